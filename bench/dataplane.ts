// Benchmark (issue 9, part 3): the data plane. TCP throughput (iperf3) and new TCP connections per
// second (bench/connrate.ts) from a guest namespace to the LAN namespace:
//   - through a kvmnet NAT network (and, when this kvmnet has `net define --no-offload`, through one
//     without the flowtable offload as well),
//   - through the same path routed without NAT and without any firewall (bridge, forwarding, nothing
//     else: the kernel's limit on this machine), built with ip commands in its own lab,
//   - through libvirt's NAT network (Debian's libvirtd in its own lab; skipped with a note without it).
// Rounds alternate the setups. Goal: kvmnet ≥ 95% of the routed limit, and above libvirt.
//   node dist/bench/dataplane.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_ROUNDS (5), KVMNET_BENCH_SECONDS (10, per iperf3 run),
// KVMNET_BENCH_CONN_SECONDS (5), KVMNET_BENCH_CONN_CONC (8 connections in flight).
import { existsSync } from 'node:fs';
import { Lab, HOST_LAN_IP } from '../test/lib/lab.js';
import { Libvirtd } from '../test/lib/libvirtd.js';
import { must, run } from '../test/lib/proc.js';
import { startLibvirtNat, tearDown } from './lib/labs.js';
import {
  connRate as connRateOf,
  dhcpGuest,
  iperf as iperfOf,
  lanServers,
  type Setup,
} from './lib/traffic.js';
import {
  cleanupOnSignal,
  goal,
  knob,
  machine,
  note,
  ratio,
  rounds,
  runMain,
  stats,
  table,
  writeSection,
  type Stats,
} from './lib/stats.js';

const ROUNDS = rounds(5);
const ROUTED = 'routed, no NAT';
const LIBVIRT = 'libvirt NAT';
const SECONDS = knob('KVMNET_BENCH_SECONDS', 10);
const CONN_SECONDS = knob('KVMNET_BENCH_CONN_SECONDS', 5);
const CONN_CONC = knob('KVMNET_BENCH_CONN_CONC', 8);
const iperf = (s: Setup): Promise<number> => iperfOf(s, SECONDS);
const connRate = (s: Setup): Promise<{ rate: number; errors: number }> =>
  connRateOf(s, CONN_SECONDS, CONN_CONC);

/**
 * kvmnet's NAT network in `lab`; with `noOffload` (a lab of its own) the network without offload.
 * Each has its own lab: behind NAT every connection comes from the host's one LAN address, and a run
 * through a shared LAN server would meet the previous run's TIME_WAIT sockets (the server closes
 * first) on the same source ports.
 */
async function kvmnetSetups(lab: Lab, noOffload: Lab | null): Promise<Setup[]> {
  await lab.kvmnetOk('net', 'define', 'bnat', '--subnet', '10.88.0.0/24', '--bridge', 'kbnat');
  await lab.kvmnetOk('net', 'start', 'bnat');
  const out: Setup[] = [{ name: 'kvmnet NAT', lab, guest: await dhcpGuest(lab, 'g1', 'kbnat') }];
  await lanServers(lab);
  if (noOffload) {
    const lab = noOffload;
    await lab.kvmnetOk(
      'net',
      'define',
      'bnooff',
      '--subnet',
      '10.88.1.0/24',
      '--bridge',
      'kbnooff',
      '--no-offload',
    );
    await lab.kvmnetOk('net', 'start', 'bnooff');
    out.push({ name: 'kvmnet NAT --no-offload', lab, guest: await dhcpGuest(lab, 'g2', 'kbnooff') });
    await lanServers(lab);
  }
  return out;
}

/** Bridge + forwarding in the host namespace, no NAT, no firewall; the LAN routes the subnet back. */
async function routedSetup(lab: Lab): Promise<Setup> {
  const h = (...args: string[]): Promise<string> => must('ip', ['-n', lab.hostNs, ...args]);
  await h('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  await h('addr', 'add', '10.89.0.1/24', 'dev', 'br0');
  await h('link', 'set', 'br0', 'up');
  await must('ip', ['netns', 'exec', lab.hostNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await must('ip', ['-n', lab.lanNs, 'route', 'add', '10.89.0.0/24', 'via', HOST_LAN_IP]);
  const g = await lab.addGuest('g1', 'br0');
  await must('ip', ['-n', g, 'addr', 'add', '10.89.0.2/24', 'dev', 'eth0']);
  await must('ip', ['-n', g, 'route', 'add', 'default', 'via', '10.89.0.1']);
  await lanServers(lab);
  return { name: ROUTED, lab, guest: g };
}

async function libvirtSetup(lab: Lab): Promise<Setup> {
  await startLibvirtNat(lab, 'kbnat', 'kbbr0', '192.168.151');
  const g = await dhcpGuest(lab, 'g1', 'kbbr0');
  await lanServers(lab);
  return { name: LIBVIRT, lab, guest: g };
}

async function offloadSupported(lab: Lab): Promise<boolean> {
  const r = await lab.kvmnet('net', 'define', '--help');
  return r.stdout.includes('--no-offload');
}

async function flowtables(lab: Lab): Promise<string> {
  const r = await run('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'flowtables']);
  const names = [...r.stdout.matchAll(/flowtable (\S+)/g)].map((m) => m[1]);
  return names.length ? `flowtable ${names.join(', ')}` : 'no flowtable';
}

async function main(): Promise<void> {
  for (const tool of ['iperf3'])
    if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0)
      throw new Error(`${tool} is not installed (scripts/setup.sh installs it)`);
  const labs: Lab[] = [];
  let lv: Libvirtd | undefined;
  let lvSkipped: string | null = null;
  const cleanup = cleanupOnSignal(() => tearDown(labs, lv, 'kbnat'));
  try {
    const klab = await Lab.create('bdpk');
    labs.push(klab);
    const offload = await offloadSupported(klab);
    let klab2: Lab | null = null;
    if (offload) {
      klab2 = await Lab.create('bdpk2');
      labs.push(klab2);
    }
    const setups = await kvmnetSetups(klab, klab2);
    const kvmnetFlow = await flowtables(klab);
    const rlab = await Lab.create('bdpr');
    rlab.skipHostCheck('the bench builds its bridges and tables by hand, not through kvmnet');
    labs.push(rlab);
    setups.push(await routedSetup(rlab));
    if (!existsSync('/usr/sbin/libvirtd')) lvSkipped = 'libvirt is not installed';
    else {
      const llab = await Lab.create('bdplv');
      labs.push(llab);
      try {
        // libvirt's networks leave its own nft tables (LIBVIRT_* chains) behind in the lab.
        llab.skipHostCheck('libvirt keeps its nftables tables after its networks stop');
        lv = await Libvirtd.start(llab);
        setups.push(await libvirtSetup(llab));
      } catch (e) {
        lvSkipped = `libvirt could not run here: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    if (lvSkipped) note(`libvirt part skipped: ${lvSkipped}`);
    if (!offload) note('this kvmnet has no `net define --no-offload`: measuring its default only');

    const gbps: Record<string, number[]> = {};
    const conns: Record<string, number[]> = {};
    const errors: Record<string, number> = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < setups.length; i++) {
        const s = setups[(r + i) % setups.length];
        if (!s) continue;
        (gbps[s.name] ??= []).push(await iperf(s));
        const c = await connRate(s);
        (conns[s.name] ??= []).push(c.rate);
        errors[s.name] = (errors[s.name] ?? 0) + c.errors;
      }
      note(`round ${r + 1}/${ROUNDS} done`);
    }

    const g = (n: string): Stats | null => (gbps[n]?.length ? stats(gbps[n] ?? []) : null);
    const c = (n: string): Stats | null => (conns[n]?.length ? stats(conns[n] ?? []) : null);
    // Ratios are paired: each round's figure over the baseline's in the same round (every setup runs
    // once per round, one after another), then the median (min–max) of those, so that a slower
    // stretch of the machine weighs on both sides of a ratio.
    const paired = (xs: number[] | undefined, base: number[] | undefined): Stats | null =>
      xs?.length && base?.length === xs.length ? stats(xs.map((x, i) => ratio(x, base[i] ?? NaN))) : null;
    const range = (r: Stats): string => `${r.min.toFixed(2)}–${r.max.toFixed(2)}`;
    /** The paired ratio's cell, with its goal when there is one (`lim`, a "≥" goal). */
    const rel = (xs: number[] | undefined, base: number[] | undefined, lim?: number): string => {
      const r = paired(xs, base);
      if (!r) return '—';
      return `${lim === undefined ? r.median.toFixed(2) : goal(r.median, lim, false)} (${range(r)})`;
    };
    const rows = setups.map((s) => {
      const kv = s.name.startsWith('kvmnet');
      const x = g(s.name);
      const y = c(s.name);
      return [
        s.name,
        x ? `${x.median.toFixed(2)} Gbit/s (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : '—',
        rel(gbps[s.name], gbps[ROUTED], kv ? 0.95 : undefined),
        rel(gbps[s.name], gbps[LIBVIRT], kv ? 1 : undefined),
        y ? `${y.median.toFixed(0)}/s (${y.min.toFixed(0)}–${y.max.toFixed(0)})` : '—',
        rel(conns[s.name], conns[ROUTED]),
        rel(conns[s.name], conns[LIBVIRT]),
        String(errors[s.name] ?? 0),
      ];
    });
    const head = [
      'path',
      'TCP throughput',
      '/ routed',
      '/ libvirt',
      'new connections',
      '/ routed',
      '/ libvirt',
      'conn. errors',
    ];
    const out = [
      `data plane, guest namespace → LAN namespace: median (min–max) of ${ROUNDS} rounds; iperf3 ${SECONDS} s, connections ${CONN_SECONDS} s with ${CONN_CONC} in flight`,
      `  kvmnet NAT runs with ${kvmnetFlow}${offload ? '' : ' (this kvmnet has no --no-offload)'}`,
    ];
    if (lvSkipped) out.push(`  (libvirt skipped: ${lvSkipped})`);
    for (const row of rows)
      out.push(
        `  ${(row[0] ?? '').padEnd(24)} ${row[1]}  /routed ${row[2]}  /libvirt ${row[3]}`,
        `  ${''.padEnd(24)} ${row[4]}  /routed ${row[5]}  /libvirt ${row[6]}  errors ${row[7]}`,
      );
    process.stdout.write(out.join('\n') + '\n');
    await writeSection(
      'Data plane (bench/dataplane.ts)',
      [
        `\`node dist/bench/dataplane.js --write\`, ${machine()}; median (min–max) of ${ROUNDS} rounds, the`,
        "setups alternated, each in a lab of its own. Ratios are paired: each round divides a setup's figure by",
        "the baseline's from the same round, and the table gives the median (min–max) of those ratios. A guest",
        'namespace (veth into the bridge) sends to the LAN namespace through the host',
        `namespace: \`iperf3 -c … -t ${SECONDS}\` (one TCP stream), then bench/connrate.ts opens TCP connections`,
        `for ${CONN_SECONDS} s, ${CONN_CONC} at a time, each accepted and closed by the server. "routed, no NAT" is a bridge`,
        "with forwarding on and no firewall at all (the kernel's limit here); libvirt is Debian's libvirtd",
        `with its iptables rules. kvmnet's NAT network ran with ${kvmnetFlow}.`,
        lvSkipped ? `\n**libvirt skipped in this run:** ${lvSkipped}\n` : '',
        table(head, rows),
        '',
        kvmnetFlow === 'no flowtable'
          ? "- This kernel has no nftables flowtables: both kvmnet rows ran the same rules, so the gap between them is this run's noise (the ranges show how much one run varies here)."
          : '- The first kvmnet row offloads established flows to its flowtable; the second runs every packet through the chains.',
        '- Neither figure depends on the number of networks, ports or forwards: the rules look them up in sets and maps.',
      ].join('\n'),
    );
  } finally {
    await cleanup();
  }
}

runMain(main);
