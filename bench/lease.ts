// Benchmark (issue 9, part 4): a new guest's first lease. Time from its first DHCPDISCOVER to the
// lease, and the number of DISCOVERs it sent, for a fresh namespace guest (new MAC each round,
// busybox udhcpc retransmitting every KVMNET_BENCH_DHCP_T seconds) on:
//   - a kvmnet NAT network (dnsmasq as kvmnet configures it),
//   - libvirt's NAT network (Debian's libvirtd in its own lab; skipped with a note without it),
//   - bare dnsmasq with and without --no-ping on otherwise identical bridges (the option alone).
// dnsmasq pings an address before offering it unless told `no-ping`; a new guest then waits for the
// ping to time out (about 3 s) and retransmits meanwhile.
//   node dist/bench/lease.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_ROUNDS (10), KVMNET_BENCH_DHCP_T (1 s between DISCOVERs).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Lab } from '../test/lib/lab.js';
import { Libvirtd } from '../test/lib/libvirtd.js';
import { must, Tracked } from '../test/lib/proc.js';
import { timedLease } from './lib/dhcp.js';
import { startLibvirtNat, tearDown } from './lib/labs.js';
import {
  cleanupOnSignal,
  knob,
  machine,
  ms,
  note,
  ratio,
  rounds,
  runMain,
  stats,
  table,
  writeSection,
} from './lib/stats.js';

const ROUNDS = rounds(10);
const DHCP_T = knob('KVMNET_BENCH_DHCP_T', 1);

interface Variant {
  name: string;
  lab: Lab;
  bridge: string;
  noPing: boolean | null;
}

/** Bare dnsmasq serving DHCP on a new bridge of the lab's host namespace. */
async function bareDnsmasq(lab: Lab, bridge: string, third: string, noPing: boolean): Promise<void> {
  await must('ip', [
    '-n',
    lab.hostNs,
    'link',
    'add',
    bridge,
    'type',
    'bridge',
    'stp_state',
    '0',
    'forward_delay',
    '0',
  ]);
  await must('ip', ['-n', lab.hostNs, 'addr', 'add', `${third}.1/24`, 'dev', bridge]);
  await must('ip', ['-n', lab.hostNs, 'link', 'set', bridge, 'up']);
  // The same DHCP checksum fix kvmnet makes: namespace guests verify UDP checksums in udhcpc.
  await must('ip', [
    'netns',
    'exec',
    lab.hostNs,
    'nft',
    `add table inet kb${bridge}; add chain inet kb${bridge} post { type filter hook postrouting priority 0; }; add rule inet kb${bridge} post oifname "${bridge}" udp dport 68 udp checksum set 0`,
  ]);
  const t = Tracked.start('ip', [
    'netns',
    'exec',
    lab.hostNs,
    'dnsmasq',
    '--no-daemon',
    '--conf-file=/dev/null',
    '--bind-interfaces',
    `--interface=${bridge}`,
    '--except-interface=lo',
    '--port=0',
    `--dhcp-range=${third}.2,${third}.254,255.255.255.0`,
    '--dhcp-authoritative',
    `--dhcp-leasefile=${join(lab.dir, `${bridge}.leases`)}`,
    ...(noPing ? ['--no-ping'] : []),
  ]);
  lab.tracked.push(t);
  await t.waitFor(/DHCP, IP range/, 10_000);
}

async function main(): Promise<void> {
  const labs: Lab[] = [];
  let lv: Libvirtd | undefined;
  let lvSkipped: string | null = null;
  const cleanup = cleanupOnSignal(() => tearDown(labs, lv, 'kblease'));
  try {
    const klab = await Lab.create('blsk');
    labs.push(klab);
    await klab.kvmnetOk('net', 'define', 'blease', '--subnet', '10.91.0.0/24', '--bridge', 'kblease');
    await klab.kvmnetOk('net', 'start', 'blease');
    const conf = await readFile(join(klab.runDir, 'net', 'blease', 'dnsmasq.conf'), 'utf8').catch(() => '');
    const kvmnetNoPing = /^no-ping$/m.test(conf);
    const variants: Variant[] = [
      { name: 'kvmnet NAT network', lab: klab, bridge: 'kblease', noPing: kvmnetNoPing },
    ];

    const blab = await Lab.create('blsb');
    blab.skipHostCheck('the bench builds its bridges and tables by hand, not through kvmnet');
    labs.push(blab);
    await bareDnsmasq(blab, 'kbnp', '10.92.0', true);
    await bareDnsmasq(blab, 'kbping', '10.92.1', false);
    variants.push({ name: 'bare dnsmasq --no-ping', lab: blab, bridge: 'kbnp', noPing: true });
    variants.push({ name: 'bare dnsmasq (ping check)', lab: blab, bridge: 'kbping', noPing: false });

    if (!existsSync('/usr/sbin/libvirtd')) lvSkipped = 'libvirt is not installed';
    else {
      const llab = await Lab.create('blsl');
      labs.push(llab);
      try {
        // libvirt's networks leave its own nft tables (LIBVIRT_* chains) behind in the lab.
        llab.skipHostCheck('libvirt keeps its nftables tables after its networks stop');
        lv = await Libvirtd.start(llab);
        await startLibvirtNat(llab, 'kblease', 'kbbr0', '192.168.152');
        variants.push({ name: 'libvirt NAT network', lab: llab, bridge: 'kbbr0', noPing: false });
      } catch (e) {
        lvSkipped = `libvirt could not run here: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    if (lvSkipped) note(`libvirt part skipped: ${lvSkipped}`);

    const times: Record<string, number[]> = {};
    const discovers: Record<string, number[]> = {};
    let guest = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(r + i) % variants.length];
        if (!v) continue;
        const ns = await v.lab.addGuest(`g${guest++}`, v.bridge);
        const t = await timedLease(ns, `g${guest}`, 30, DHCP_T);
        (times[v.name] ??= []).push(t.ms);
        (discovers[v.name] ??= []).push(t.discovers);
      }
      note(`round ${r + 1}/${ROUNDS} done`);
    }

    const base = stats(times['kvmnet NAT network'] ?? []);
    const rows = variants.map((v) => {
      const t = stats(times[v.name] ?? []);
      const d = stats(discovers[v.name] ?? []);
      return [
        v.name,
        v.noPing === null ? '?' : v.noPing ? 'yes' : 'no',
        `${ms(t.median)} (${ms(t.min)}–${ms(t.max)})`,
        `${d.median} (${d.min}–${d.max})`,
        ratio(t.median, base.median).toFixed(2),
      ];
    });
    const head = ['DHCP server', 'no-ping', 'first DISCOVER → lease', 'DISCOVERs', '/ kvmnet'];
    const out = [
      `first lease of a new guest: median (min–max) of ${ROUNDS} rounds, udhcpc retransmitting every ${DHCP_T} s`,
      ...(lvSkipped ? [`  (libvirt skipped: ${lvSkipped})`] : []),
      ...rows.map(
        (r) =>
          `  ${(r[0] ?? '').padEnd(26)} no-ping ${(r[1] ?? '').padEnd(3)}  ${r[2]}  DISCOVERs ${r[3]}  /kvmnet ${r[4]}`,
      ),
    ];
    process.stdout.write(out.join('\n') + '\n');
    await writeSection(
      'First lease (bench/lease.ts)',
      [
        `\`node dist/bench/lease.js --write\`, ${machine()}; median (min–max) of ${ROUNDS} rounds, each a new`,
        `namespace guest (new MAC) running busybox \`udhcpc\` with a ${DHCP_T} s retransmit interval, timed from its first`,
        'DHCPDISCOVER to the lease. "bare dnsmasq" is the same dnsmasq on two otherwise identical bridges,',
        'with and without `--no-ping`: the option alone.',
        '',
        lvSkipped ? `**libvirt skipped in this run:** ${lvSkipped}\n` : '',
        table(head, rows),
        '',
        "kvmnet's default is `no-ping` on every network with DHCP: dnsmasq owns the whole pool there (kvmnet",
        'gives no address of the pool to anything else; reservations are kept out of the dynamic leases by',
        "dnsmasq itself), so the ping can only find a guest that kept an expired lease's address, which",
        'dnsmasq already knows from its lease file. The ping costs every new guest the time above.',
      ].join('\n'),
    );
  } finally {
    await cleanup();
  }
}

runMain(main);
