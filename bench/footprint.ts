// Benchmark (issue 9, part 5): memory. `kvmnet serve` as the systemd unit runs it, idle with 10
// NAT networks and 100 ports made through its API, and each dnsmasq it runs; against libvirtd
// (Debian's, in its own lab) idle with 10 NAT networks and each dnsmasq libvirt runs, in the same run.
// libvirt's ports come with domains (QEMU guests), so its figure is for the networks alone.
//   node dist/bench/footprint.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_NETS (10 here), KVMNET_BENCH_PORTS (10 per network).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Daemon } from '../test/lib/daemon.js';
import { Lab } from '../test/lib/lab.js';
import { Libvirtd, virsh } from '../test/lib/libvirtd.js';
import { populate, startLibvirtNat } from './lib/labs.js';
import { pidsIn, rssMb, settledRss, unitEnv } from './lib/mem.js';
import {
  cleanupOnSignal,
  fmt,
  knob,
  machine,
  note,
  runMain,
  stats,
  table,
  writeSection,
  type Stats,
} from './lib/stats.js';

const NETS = knob('KVMNET_BENCH_NETS', 10);
const PORTS = knob('KVMNET_BENCH_PORTS', 10);
const GOAL_MB = 60;

interface Side {
  daemonEmpty: number;
  daemonIdle: number;
  /** RSS of every dnsmasq process (a network has one, plus the helper that runs its dhcp-script). */
  dnsmasq: number[];
}

async function dnsmasqRss(ns: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await pidsIn(ns, 'dnsmasq')) out.push(await rssMb(pid));
  return out.filter((x) => !Number.isNaN(x));
}

async function kvmnetSide(lab: Lab): Promise<Side> {
  const daemon = await Daemon.start(lab, [], await unitEnv());
  try {
    const pid = daemon.proc.child.pid ?? 0;
    const daemonEmpty = await settledRss(pid, 3);
    note(`kvmnet: ${NETS} networks, ${NETS * PORTS} ports through the API…`);
    await populate(daemon, NETS, PORTS);
    const daemonIdle = await settledRss(pid);
    return { daemonEmpty, daemonIdle, dnsmasq: await dnsmasqRss(lab.hostNs) };
  } finally {
    await lab.kvmnet('down').catch(() => undefined);
    await daemon.stop();
  }
}

async function libvirtSide(lab: Lab): Promise<Side> {
  const lv = await Libvirtd.start(lab);
  const defined: string[] = [];
  try {
    const pid = Number((await readFile('/run/libvirtd.pid', 'utf8')).trim());
    const daemonEmpty = await settledRss(pid, 3);
    note(`libvirt: ${NETS} networks…`);
    for (let i = 0; i < NETS; i++) {
      defined.push(`kf${i}`); // removed below in any case (virsh fails harmlessly if it never came)
      await startLibvirtNat(lab, `kf${i}`, `kfbr${i}`, `10.61.${i}`);
    }
    const daemonIdle = await settledRss(pid);
    return { daemonEmpty, daemonIdle, dnsmasq: await dnsmasqRss(lab.hostNs) };
  } finally {
    for (const n of defined) {
      await virsh(['net-destroy', n]);
      await virsh(['net-undefine', n]);
    }
    await lv.stop();
  }
}

function mb(x: number): string {
  return `${x.toFixed(1)} MB`;
}

function perNetwork(s: Side): string {
  const total = s.dnsmasq.reduce((a, b) => a + b, 0);
  return `${(s.dnsmasq.length / NETS).toFixed(0)} processes, ${mb(total / NETS)}`;
}

async function main(): Promise<void> {
  const labs: Lab[] = [];
  const cleanup = cleanupOnSignal(async () => {
    const failed: unknown[] = [];
    for (const l of labs) await l.destroy().catch((e: unknown) => void failed.push(e));
    if (failed.length) throw failed[0];
  });
  try {
    const k = await Lab.create('bfpk');
    labs.push(k);
    const kv = await kvmnetSide(k);
    let lv: Side | string;
    if (!existsSync('/usr/sbin/libvirtd')) lv = 'libvirt is not installed';
    else {
      const l = await Lab.create('bfplv');
      labs.push(l);
      l.skipHostCheck('libvirt keeps its nftables tables after its networks stop');
      lv = await libvirtSide(l).catch((e: unknown) => `libvirt failed: ${String(e)}`);
    }
    const dk: Stats = stats(kv.dnsmasq);
    const dl: Stats | null = typeof lv === 'string' ? null : stats(lv.dnsmasq);
    const rows = [
      ['daemon, empty state', mb(kv.daemonEmpty), typeof lv === 'string' ? '–' : mb(lv.daemonEmpty), ''],
      [
        `daemon, idle after the work (${NETS} networks; kvmnet also ${NETS * PORTS} ports)`,
        mb(kv.daemonIdle),
        typeof lv === 'string' ? '–' : mb(lv.daemonIdle),
        `${kv.daemonIdle <= GOAL_MB ? 'met' : '**not met**'} (goal ≤ ${GOAL_MB} MB)`,
      ],
      ['one dnsmasq process', fmt(dk, 'MB'), dl ? fmt(dl, 'MB') : '–', ''],
      ['dnsmasq per network', perNetwork(kv), typeof lv === 'string' ? '–' : perNetwork(lv), ''],
    ];
    const head = ['RSS', 'kvmnet serve (unit environment)', 'libvirtd 9', ''];
    process.stdout.write(
      [
        `Footprint, ${machine()}:`,
        ...rows.map((r) => `  ${r[0]}: kvmnet ${r[1]} | libvirt ${r[2]} ${r[3]}`),
        typeof lv === 'string' ? `  (${lv})` : '',
      ].join('\n') + '\n',
    );
    await writeSection(
      'Footprint (bench/footprint.ts)',
      [
        `\`node dist/bench/footprint.js --write\`, ${machine()}. RSS (VmRSS) medians of 5 samples one`,
        'second apart; dnsmasq as median (min–max) over every dnsmasq process of the lab. kvmnet serve',
        'runs with the Environment= of contrib/systemd/kvmnet-serve.service; libvirtd is Debian’s,',
        'in its own lab namespace. libvirt’s ports come with domains (QEMU guests), so its figure is',
        'for the networks alone. Between commands the kvmnet CLI holds no memory at all: it is not a',
        'daemon; `kvmnet serve` is optional (the API, the page, the repair loop).',
        typeof lv === 'string' ? `\n**libvirt skipped in this run:** ${lv}\n` : '',
        table(head, rows),
        '',
        '- What grows: the daemon by the state it holds (about 1 KiB per port) and the memory its work',
        '  leaves (the output of the `ip`/`nft` processes it ran); each network adds its dnsmasq',
        '  processes (the second is the helper that runs the dhcp-script, the lease hook), the same as',
        "  libvirt's. The rest is Node.js itself: a bare Node.js HTTP server is about 43 MB here.",
        `- The ${GOAL_MB} MB goal is ${kv.daemonIdle <= GOAL_MB ? `met, with ${mb(GOAL_MB - kv.daemonIdle)} to spare` : 'not met'}: most of the daemon is the Node.js runtime (kvmnet serve section above).`,
      ].join('\n'),
    );
  } finally {
    await cleanup();
  }
}

runMain(main);
