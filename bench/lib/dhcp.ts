// A namespace guest's DHCP client for the benchmarks: busybox udhcpc (as test/lib/lab.ts dhcp()
// runs it), with every line of its output timestamped, so a bench can time from the first
// DHCPDISCOVER to the lease and count the DISCOVERs.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO } from '../../test/lib/lab.js';

export interface LeaseTiming {
  ip: string;
  /** From the first "broadcasting discover" line to the script's LEASE line. */
  ms: number;
  discovers: number;
}

/** Runs udhcpc once in `ns` (retransmitting every `timeoutS` seconds, `tries` times). */
export function timedLease(ns: string, hostname: string, tries = 30, timeoutS = 1): Promise<LeaseTiming> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        'busybox',
        'udhcpc',
        '-i',
        'eth0',
        '-f',
        '-q',
        '-n',
        '-t',
        String(tries),
        '-T',
        String(timeoutS),
        '-x',
        `hostname:${hostname}`,
        '-s',
        join(REPO, 'test/fixtures/udhcpc.sh'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let first = NaN;
    let leaseAt = NaN;
    let ip = '';
    let discovers = 0;
    let text = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), (tries * timeoutS + 30) * 1000);
    const onData = (d: Buffer): void => {
      const now = performance.now();
      const s = d.toString();
      text += s;
      for (const line of s.split('\n')) {
        if (/sending discover|broadcasting discover/.test(line)) {
          discovers++;
          if (Number.isNaN(first)) first = now;
        }
        const m = /LEASE ip=(\S+)/.exec(line);
        if (m && Number.isNaN(leaseAt)) {
          leaseAt = now;
          ip = m[1] ?? '';
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 || Number.isNaN(leaseAt) || Number.isNaN(first))
        reject(new Error(`udhcpc in ${ns} got no lease (exit ${code}): ${text}`));
      else resolve({ ip, ms: leaseAt - first, discovers });
    });
  });
}
