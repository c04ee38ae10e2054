// Memory readings shared by the serve and footprint benches: a process's RSS, its median over a few
// seconds, the processes of one command name in a namespace, and the systemd unit's environment.
import { readFile } from 'node:fs/promises';
import { REPO } from '../../test/lib/lab.js';
import { run } from '../../test/lib/proc.js';
import { median } from './stats.js';

/** VmRSS of a process, in MB (NaN when it is gone). */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** Median RSS over `n` samples one second apart. */
export async function settledRss(pid: number, n = 5): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    xs.push(await rssMb(pid));
  }
  return median(xs);
}

/** The PIDs of the processes named `comm` (as /proc/PID/comm says) in network namespace `ns`. */
export async function pidsIn(ns: string, comm: string): Promise<number[]> {
  const out = (await run('ip', ['netns', 'pids', ns])).stdout;
  const pids: number[] = [];
  for (const p of out.split('\n').filter(Boolean).map(Number)) {
    const c = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim();
    if (c === comm) pids.push(p);
  }
  return pids.sort((a, b) => a - b);
}

/** The Environment= lines of the shipped systemd unit: the daemon as it runs in production. */
export async function unitEnv(): Promise<NodeJS.ProcessEnv> {
  const unit = await readFile(`${REPO}/contrib/systemd/kvmnet-serve.service`, 'utf8');
  const env: NodeJS.ProcessEnv = {};
  for (const m of unit.matchAll(/^Environment=(?:"([^"]*)"|(\S+))\s*$/gm)) {
    const kv = m[1] ?? m[2] ?? '';
    const eq = kv.indexOf('=');
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}
