// Shared by the data plane benches (dataplane.ts, ruleset-ab.ts): the LAN namespace's servers
// (iperf3 and connrate.ts), a DHCP guest, and one run of each client from a guest namespace.
import { join } from 'node:path';
import { Lab, LAN_ROUTER, REPO } from '../../test/lib/lab.js';
import { Tracked } from '../../test/lib/proc.js';
import { timedLease } from './dhcp.js';

export const IPERF_PORT = 5201;
export const CONN_PORT = 5301;

/** One path through a lab: traffic from `guest` to the lab's LAN namespace. */
export interface Setup {
  name: string;
  lab: Lab;
  guest: string;
}

/** iperf3 and the connection-rate server in a lab's LAN namespace. */
export async function lanServers(lab: Lab): Promise<void> {
  const iperf = Tracked.start('ip', [
    'netns',
    'exec',
    lab.lanNs,
    'iperf3',
    '-s',
    '-p',
    String(IPERF_PORT),
    '--forceflush',
  ]);
  lab.tracked.push(iperf);
  await iperf.waitFor(/listening/i);
  const conn = Tracked.start('ip', [
    'netns',
    'exec',
    lab.lanNs,
    process.execPath,
    join(REPO, 'dist/bench/connrate.js'),
    '--server',
    String(CONN_PORT),
  ]);
  lab.tracked.push(conn);
  await conn.waitFor(/listening/);
}

/** The guest's route out: a lease from the network's DHCP server. */
export async function dhcpGuest(lab: Lab, short: string, bridge: string): Promise<string> {
  const ns = await lab.addGuest(short, bridge);
  await timedLease(ns, short); // libvirt's dnsmasq pings first: more tries than lab.dhcp() makes
  return ns;
}

/** One `iperf3 -c` of `seconds` (one TCP stream) to the LAN; Gbit/s received. */
export async function iperf(s: Setup, seconds: number): Promise<number> {
  const r = await s.lab.exec(
    s.guest,
    ['iperf3', '-c', LAN_ROUTER, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'],
    (seconds + 30) * 1000,
  );
  const j = JSON.parse(r.stdout || '{}') as {
    error?: string;
    end?: { sum_received?: { bits_per_second?: number } };
  };
  const bps = j.end?.sum_received?.bits_per_second;
  if (r.code !== 0 || bps === undefined) throw new Error(`iperf3 in ${s.name}: ${j.error ?? r.stderr}`);
  return bps / 1e9;
}

/** New TCP connections per second to the LAN for `seconds`, `conc` in flight (bench/connrate.ts). */
export async function connRate(
  s: Setup,
  seconds: number,
  conc: number,
): Promise<{ rate: number; errors: number }> {
  const r = await s.lab.exec(
    s.guest,
    [
      process.execPath,
      join(REPO, 'dist/bench/connrate.js'),
      '--client',
      LAN_ROUTER,
      String(CONN_PORT),
      String(seconds),
      String(conc),
    ],
    (seconds + 30) * 1000,
  );
  if (r.code !== 0) throw new Error(`connrate in ${s.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { rate: number; errors: number };
}
