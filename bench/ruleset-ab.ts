// Benchmark helper (issue 9, part 3): rulesets of `table inet kvmnet` compared on one lab, the
// table swapped round by round (A B C, B C A, ...), so the machine's drift hits them alike.
// Not part of `npm run bench`: for changes to the per-packet path (src/render/nft.ts).
//   node dist/bench/ruleset-ab.js [NAME=FILE ...]     (as root)
// The lab runs kvmnet's NAT network "default" (192.168.122.0/24, bridge virbr0) with one guest
// namespace; each FILE is an `nft list table inet kvmnet` listing of that same network (e.g. taken
// with an older kvmnet), loaded in place of the table in one transaction. Always measured too:
// "current" (the table this kvmnet applies), "bare" (masquerade only, no filter chain: the floor
// of any NAT ruleset, conntrack and NAT included) and "none" (no table: no conntrack, no NAT, the
// LAN routes the subnet back; bench/dataplane.ts's "routed, no NAT" on this lab). Per round: iperf3 and connrate.ts as in
// bench/dataplane.ts. Prints median (min–max) per ruleset and the median of the per-round ratios to
// "current". Knobs: KVMNET_BENCH_ROUNDS (8), KVMNET_BENCH_SECONDS (5), KVMNET_BENCH_CONN_SECONDS (3),
// KVMNET_BENCH_CONN_CONC (8).
import { readFileSync } from 'node:fs';
import { HOST_LAN_IP, Lab } from '../test/lib/lab.js';
import { must } from '../test/lib/proc.js';
import { tearDown } from './lib/labs.js';
import { cleanupOnSignal, knob, machine, median, note, rounds, runMain, stats } from './lib/stats.js';
import { connRate, dhcpGuest, iperf, lanServers, type Setup } from './lib/traffic.js';

const ROUNDS = rounds(8);
const SECONDS = knob('KVMNET_BENCH_SECONDS', 5);
const CONN_SECONDS = knob('KVMNET_BENCH_CONN_SECONDS', 3);
const CONN_CONC = knob('KVMNET_BENCH_CONN_CONC', 8);
const SUBNET = '192.168.122.0/24';

const BARE = `table inet kvmnet {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${SUBNET} ip daddr != ${SUBNET} meta l4proto { tcp, udp } masquerade to :1024-65535
    ip saddr ${SUBNET} ip daddr != ${SUBNET} masquerade
  }
}
`;

interface Variant {
  name: string;
  text: string;
}

function variantsFromArgs(): Variant[] {
  return process.argv
    .slice(2)
    .filter((a) => !a.startsWith('--'))
    .map((a) => {
      const eq = a.indexOf('=');
      if (eq < 1) throw new Error(`expected NAME=FILE, got ${a}`);
      return { name: a.slice(0, eq), text: readFileSync(a.slice(eq + 1), 'utf8') };
    });
}

async function main(): Promise<void> {
  const extra = variantsFromArgs();
  const labs: Lab[] = [];
  const cleanup = cleanupOnSignal(() => tearDown(labs, undefined, ''));
  try {
    const lab = await Lab.create('bab');
    labs.push(lab);
    await lab.kvmnetOk('net', 'define', 'default', '--subnet', SUBNET, '--bridge', 'virbr0');
    await lab.kvmnetOk('net', 'start', 'default');
    const s: Setup = { name: 'default', lab, guest: await dhcpGuest(lab, 'g1', 'virbr0') };
    await lanServers(lab);
    const nft = (args: string[], input?: string): Promise<string> =>
      must('ip', ['netns', 'exec', lab.hostNs, 'nft', ...args], input === undefined ? {} : { input });
    // Every connection comes from the host's one LAN address: with conntrack's 120 s TIME_WAIT the
    // rounds would fill the masquerade's port range, slower for whichever ruleset runs later.
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'sysctl',
      '-qw',
      'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1',
    ]);
    const current = await nft(['list', 'table', 'inet', 'kvmnet']);
    await must('ip', ['-n', lab.lanNs, 'route', 'add', SUBNET, 'via', HOST_LAN_IP]); // for "none"
    const variants: Variant[] = [
      { name: 'current', text: current },
      ...extra,
      { name: 'bare', text: BARE },
      { name: 'none', text: '' },
    ];
    const load = (v: Variant): Promise<string> =>
      nft(['-f', '-'], `add table inet kvmnet\ndelete table inet kvmnet\n${v.text}`);

    const gbps = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    const conns = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    const errors = new Map<string, number>();
    try {
      // A warm-up, not recorded: the first run of a fresh lab is slower.
      await iperf(s, 1);
      await connRate(s, 1, CONN_CONC);
      for (let r = 0; r < ROUNDS; r++) {
        for (let i = 0; i < variants.length; i++) {
          const v = variants[(r + i) % variants.length];
          if (!v) continue;
          await load(v);
          gbps.get(v.name)?.push(await iperf(s, SECONDS));
          const c = await connRate(s, CONN_SECONDS, CONN_CONC);
          conns.get(v.name)?.push(c.rate);
          errors.set(v.name, (errors.get(v.name) ?? 0) + c.errors);
        }
        note(`round ${r + 1}/${ROUNDS} done`);
      }
    } finally {
      await load(variants[0] as Variant); // kvmnet's own table back, for `kvmnet down`
    }

    const perRound = (m: Map<string, number[]>, name: string): number =>
      median((m.get(name) ?? []).map((x, i) => x / (m.get('current')?.[i] ?? NaN)));
    const out = [
      `table inet kvmnet rulesets on one lab (${machine()}), ${ROUNDS} rounds, order rotated each round;`,
      `iperf3 ${SECONDS} s, connections ${CONN_SECONDS} s with ${CONN_CONC} in flight; median (min–max), and the median of the per-round ratios to "current"`,
    ];
    for (const v of variants) {
      const g = stats(gbps.get(v.name) ?? []);
      const c = stats(conns.get(v.name) ?? []);
      out.push(
        `  ${v.name.padEnd(10)} ${g.median.toFixed(2)} Gbit/s (${g.min.toFixed(2)}–${g.max.toFixed(2)}) x${perRound(gbps, v.name).toFixed(3)}` +
          `   ${c.median.toFixed(0)} conn/s (${c.min.toFixed(0)}–${c.max.toFixed(0)}) x${perRound(conns, v.name).toFixed(3)}` +
          `   errors ${errors.get(v.name) ?? 0}`,
      );
    }
    out.push('  raw Gbit/s: ' + JSON.stringify(Object.fromEntries(gbps)));
    out.push('  raw conn/s: ' + JSON.stringify(Object.fromEntries(conns)));
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await cleanup();
  }
}

runMain(main);
