// Benchmark (issue 9, part 1): kvmnet's control plane against libvirt's, same operations through
// each tool's CLI (and kvmnet's API), alternated round by round, in namespace labs.
//   - define+start a NAT network like libvirt's `default`; stop it
//   - add and remove a static DHCP reservation on the running network
//   - define+start N NAT networks, then stop+undefine them (N = 20)
// libvirt runs as Debian's libvirtd inside its own lab (test/lib/libvirtd.ts); kvmnet's CLI and
// `kvmnet serve` (through its Unix socket) in another. Without libvirt the kvmnet side still runs
// and the ratios are left out with a note.
//   node dist/bench/control-plane.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_ROUNDS (5), KVMNET_BENCH_NETS (20).
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Daemon } from '../test/lib/daemon.js';
import { Lab } from '../test/lib/lab.js';
import { Libvirtd, virsh } from '../test/lib/libvirtd.js';
import { libvirtNatXml } from './lib/labs.js';
import { run } from '../test/lib/proc.js';
import {
  cleanupOnSignal,
  goal,
  knob,
  machine,
  ms,
  note,
  ratio,
  rounds,
  runMain,
  stats,
  table,
  time,
  writeSection,
  type Stats,
} from './lib/stats.js';

const ROUNDS = rounds(5);
const NETS = knob('KVMNET_BENCH_NETS', 20);
const RES_MAC = '52:54:00:9b:00:01';

type Op = 'define' | 'start' | 'resAdd' | 'resDel' | 'stop' | 'manyUp' | 'manyDown';
const OPS: Op[] = ['define', 'start', 'resAdd', 'resDel', 'stop', 'manyUp', 'manyDown'];
const OP_LABEL: Record<Op, string> = {
  define: 'define (default-like NAT network)',
  start: 'start it',
  resAdd: 'add a DHCP reservation (running)',
  resDel: 'remove the reservation',
  stop: 'stop it',
  manyUp: `define+start ${NETS} NAT networks`,
  manyDown: `stop+undefine ${NETS} networks`,
};

/** One tool's way of doing each operation; `cleanup` undoes whatever is left after a failure. */
interface Tool {
  name: string;
  define(): Promise<void>;
  start(): Promise<void>;
  resAdd(): Promise<void>;
  resDel(): Promise<void>;
  stop(): Promise<void>;
  undefine(): Promise<void>;
  manyUp(): Promise<void>;
  manyDown(): Promise<void>;
  cleanup(): Promise<void>;
}

async function ok(
  p: Promise<{ code: number; stdout: string; stderr: string }>,
  what: string,
): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** libvirt through virsh. Names are prefixed `kb` so they never meet the package's `default`. */
function libvirtTool(lab: Lab): Tool {
  const defined = new Set<string>();
  const v = (...args: string[]): Promise<string> => ok(virsh(args), `virsh ${args.join(' ')}`);
  const defineNet = async (name: string, bridge: string, third: string): Promise<void> => {
    const file = join(lab.dir, `${name}.xml`);
    await writeFile(file, libvirtNatXml(name, bridge, third));
    await v('net-define', file);
    defined.add(name);
  };
  const host = `<host mac='${RES_MAC}' name='res1' ip='192.168.150.10'/>`;
  return {
    name: 'libvirt',
    define: () => defineNet('kbdefault', 'kbbr0', '192.168.150'),
    start: () => v('net-start', 'kbdefault').then(() => undefined),
    resAdd: () =>
      v('net-update', 'kbdefault', 'add', 'ip-dhcp-host', host, '--live', '--config').then(() => {}),
    resDel: () =>
      v('net-update', 'kbdefault', 'delete', 'ip-dhcp-host', host, '--live', '--config').then(() => {}),
    stop: () => v('net-destroy', 'kbdefault').then(() => undefined),
    undefine: async () => {
      await v('net-undefine', 'kbdefault');
      defined.delete('kbdefault');
    },
    manyUp: async () => {
      for (let i = 0; i < NETS; i++) {
        await defineNet(`kb${i}`, `kbbr${i + 1}`, `10.77.${i}`);
        await v('net-start', `kb${i}`);
      }
    },
    manyDown: async () => {
      for (let i = 0; i < NETS; i++) {
        await v('net-destroy', `kb${i}`);
        await v('net-undefine', `kb${i}`);
        defined.delete(`kb${i}`);
      }
    },
    cleanup: async () => {
      for (const n of defined) {
        await virsh(['net-destroy', n]);
        await virsh(['net-undefine', n]);
      }
      defined.clear();
    },
  };
}

/**
 * The CLI in `lab`, run as a command like virsh (bin/kvmnet's launcher): alone (KVMNET_NO_DAEMON=1)
 * or handing its commands to the lab's `kvmnet serve`.
 */
function cli(lab: Lab, alone: boolean): (...args: string[]) => Promise<string> {
  return (...args) => lab.kvmnetCommandOk(alone ? { KVMNET_NO_DAEMON: '1' } : {}, ...args);
}

/**
 * kvmnet's CLI, one process per operation as with virsh: alone (the engine in the CLI's process),
 * or with `kvmnet serve` running, which it hands define, start, stop, undefine and the reservation
 * to, as virsh does libvirtd (src/cli/daemon.ts).
 */
function kvmnetCliTool(lab: Lab, alone: boolean): Tool {
  const k = cli(lab, alone);
  return {
    name: alone ? 'kvmnet CLI' : 'kvmnet CLI+serve',
    define: () => k('net', 'define', 'default', '--subnet', '192.168.122.0/24').then(() => {}),
    start: () => k('net', 'start', 'default').then(() => {}),
    resAdd: () =>
      k('libvirt', 'interface', 'default', '--vm', 'res1', '--mac', RES_MAC, '--ip', '192.168.122.10').then(
        () => {},
      ),
    resDel: () => k('port', 'del', 'res1', '--network', 'default').then(() => {}),
    stop: () => k('net', 'stop', 'default').then(() => {}),
    undefine: () => k('net', 'undefine', 'default').then(() => {}),
    manyUp: async () => {
      for (let i = 0; i < NETS; i++) {
        await k('net', 'define', `kb${i}`, '--subnet', `10.77.${i}.0/24`);
        await k('net', 'start', `kb${i}`);
      }
    },
    manyDown: async () => {
      for (let i = 0; i < NETS; i++) {
        await k('net', 'stop', `kb${i}`);
        await k('net', 'undefine', `kb${i}`);
      }
    },
    cleanup: async () => {
      await lab.kvmnet('down');
      await writeFile(join(lab.dir, 'empty.yaml'), 'networks: {}\n');
      await lab.kvmnet('apply', '-f', join(lab.dir, 'empty.yaml'));
    },
  };
}

/** kvmnet's bulk form of the N-network cycle: one `apply` + one `up`, then one `apply`. */
function kvmnetBulkTool(lab: Lab): Pick<Tool, 'name' | 'manyUp' | 'manyDown'> {
  const file = join(lab.dir, 'many.yaml');
  const empty = join(lab.dir, 'empty.yaml');
  const k = cli(lab, true);
  return {
    name: 'kvmnet apply+up',
    manyUp: async () => {
      const lines = ['networks:'];
      for (let i = 0; i < NETS; i++)
        lines.push(`  kb${i}:`, '    mode: nat', `    subnet: 10.77.${i}.0/24`, '    autostart: true');
      await writeFile(file, lines.join('\n') + '\n');
      await k('apply', '-f', file);
      await k('up');
    },
    manyDown: async () => {
      await writeFile(empty, 'networks: {}\n');
      await k('apply', '-f', empty);
    },
  };
}

/** kvmnet serve's API over its Unix socket (the reservation is a port: the API makes its tap too). */
function kvmnetApiTool(d: Daemon): Tool {
  const post = (path: string, body?: unknown, status = 200): Promise<unknown> =>
    d.ok(path, { method: 'POST', ...(body === undefined ? {} : { body }) }, status);
  const del = (path: string): Promise<unknown> => d.ok(path, { method: 'DELETE' });
  return {
    name: 'kvmnet API',
    define: () => post('/api/networks', { name: 'default', subnet: '192.168.122.0/24' }, 201).then(() => {}),
    start: () => post('/api/networks/default/start').then(() => {}),
    resAdd: () =>
      post(
        '/api/ports',
        { network: 'default', vm: 'res1', mac: RES_MAC, ip: '192.168.122.10', tap: 'libvirt' },
        201,
      ).then(() => {}),
    resDel: () => del('/api/ports/res1?network=default').then(() => {}),
    stop: () => post('/api/networks/default/stop').then(() => {}),
    undefine: () => del('/api/networks/default').then(() => {}),
    manyUp: async () => {
      for (let i = 0; i < NETS; i++) {
        await post('/api/networks', { name: `kb${i}`, subnet: `10.77.${i}.0/24` }, 201);
        await post(`/api/networks/kb${i}/start`);
      }
    },
    manyDown: async () => {
      for (let i = 0; i < NETS; i++) {
        await post(`/api/networks/kb${i}/stop`);
        await del(`/api/networks/kb${i}`);
      }
    },
    cleanup: async () => {
      await d.request('/api/down', { method: 'POST' }).catch(() => undefined);
    },
  };
}

/** The same bulk form through the API: `POST /api/apply` (the file as JSON) + `POST /api/up`. */
function kvmnetApiBulkTool(d: Daemon): Pick<Tool, 'name' | 'manyUp' | 'manyDown'> {
  const post = (path: string, body?: unknown): Promise<unknown> =>
    d.ok(path, { method: 'POST', ...(body === undefined ? {} : { body }) });
  return {
    name: 'kvmnet API apply+up',
    manyUp: async () => {
      const networks: Record<string, unknown> = {};
      for (let i = 0; i < NETS; i++)
        networks[`kb${i}`] = { mode: 'nat', subnet: `10.77.${i}.0/24`, autostart: true };
      await post('/api/apply', { networks });
      await post('/api/up');
    },
    manyDown: async () => {
      await post('/api/apply', { networks: {} });
    },
  };
}

type Samples = Record<string, Partial<Record<Op, number[]>>>;

function push(s: Samples, tool: string, op: Op, x: number): void {
  ((s[tool] ??= {})[op] ??= []).push(x);
}

async function round(tool: Tool, s: Samples): Promise<void> {
  push(s, tool.name, 'define', await time(() => tool.define()));
  push(s, tool.name, 'start', await time(() => tool.start()));
  push(s, tool.name, 'resAdd', await time(() => tool.resAdd()));
  push(s, tool.name, 'resDel', await time(() => tool.resDel()));
  push(s, tool.name, 'stop', await time(() => tool.stop()));
  await tool.undefine();
  push(s, tool.name, 'manyUp', await time(() => tool.manyUp()));
  push(s, tool.name, 'manyDown', await time(() => tool.manyDown()));
}

async function startLibvirt(): Promise<{ lab: Lab; daemon: Libvirtd } | string> {
  if (!existsSync('/usr/sbin/libvirtd') || (await run('sh', ['-c', 'command -v virsh'])).code !== 0)
    return 'libvirt is not installed (apt-get install libvirt-daemon-system libvirt-clients)';
  const lab = await Lab.create('bcplv');
  try {
    // libvirt's networks leave its own nft tables (LIBVIRT_* chains) behind in the lab.
    lab.skipHostCheck('libvirt keeps its nftables tables after its networks stop');
    return { lab, daemon: await Libvirtd.start(lab) };
  } catch (e) {
    await lab.destroy();
    return `libvirtd could not start here: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Untimed: the first start of a network after a daemon starts is not what an admin sees. */
async function warmUp(tool: Tool): Promise<void> {
  await tool.define();
  await tool.start();
  await tool.stop();
  await tool.undefine();
}

async function main(): Promise<void> {
  const samples: Samples = {};
  const lv = await startLibvirt();
  let lab: Lab | undefined;
  let daemon: Daemon | undefined;
  const tools: Tool[] = [];
  const cleanup = cleanupOnSignal(async () => {
    for (const t of tools)
      await t.cleanup().catch((e: unknown) => note(`cleanup of ${t.name}: ${String(e)}`));
    // Every lab goes, even when an earlier one's teardown fails; the first failure is rethrown.
    const failed: unknown[] = [];
    const keep = (e: unknown) => void failed.push(e);
    if (daemon) await daemon.stop().catch(keep);
    if (lab) await lab.destroy().catch(keep);
    if (typeof lv !== 'string') {
      await lv.daemon.stop().catch(keep);
      await lv.lab.destroy().catch(keep);
    }
    if (failed.length) throw failed[0];
  });
  try {
    lab = await Lab.create('bcpk');
    if (typeof lv === 'string') note(`libvirt part skipped: ${lv}`);
    else tools.push(libvirtTool(lv.lab));
    tools.push(kvmnetCliTool(lab, true));
    daemon = await Daemon.start(lab);
    tools.push(kvmnetCliTool(lab, false), kvmnetApiTool(daemon));
    const bulk = kvmnetBulkTool(lab);
    const apiBulk = kvmnetApiBulkTool(daemon);
    // The lab's first `up` would define and start the stock `default` network inside the first
    // timed bulk step; take that first run now and undefine `default` (later `up`s leave it out).
    await lab.kvmnetOk('up');
    await bulk.manyDown();
    for (const t of tools) await warmUp(t);
    note(`${ROUNDS} rounds of ${tools.map((t) => t.name).join(', ')}; ${NETS} networks in the bulk step`);
    for (let r = 0; r < ROUNDS; r++) {
      // A B A B, with the first tool rotating so no tool always runs first.
      for (let i = 0; i < tools.length; i++) {
        const tool = tools[(r + i) % tools.length];
        if (tool) await round(tool, samples);
      }
      for (const b of r % 2 === 0 ? [bulk, apiBulk] : [apiBulk, bulk]) {
        push(samples, b.name, 'manyUp', await time(() => b.manyUp()));
        push(samples, b.name, 'manyDown', await time(() => b.manyDown()));
      }
      note(`round ${r + 1}/${ROUNDS} done`);
    }
    report(samples, typeof lv === 'string' ? lv : null);
    await writeDocs(samples, typeof lv === 'string' ? lv : null);
  } finally {
    await cleanup();
  }
}

const GOALS: Partial<Record<Op, { cli: number; api: number }>> = {
  start: { cli: 1, api: 0.5 },
  stop: { cli: 0.25, api: 0.25 },
  resAdd: { cli: 0.25, api: 0.25 },
  resDel: { cli: 0.25, api: 0.25 },
  manyUp: { cli: 0.3, api: 0.3 },
  manyDown: { cli: 0.3, api: 0.3 },
};

function get(s: Samples, tool: string, op: Op): Stats | null {
  const xs = s[tool]?.[op];
  return xs && xs.length ? stats(xs) : null;
}

function cell(x: Stats | null): string {
  return x ? `${ms(x.median)} (${ms(x.min)}–${ms(x.max)})` : '—';
}

function ratioCell(s: Samples, tool: string, op: Op, limit: number | undefined): string {
  const a = get(s, tool, op);
  const b = get(s, 'libvirt', op);
  if (!a || !b) return '—';
  const r = ratio(a.median, b.median);
  return limit === undefined ? r.toFixed(2) : goal(r, limit);
}

function rows(s: Samples): string[][] {
  return OPS.map((op) => [
    OP_LABEL[op],
    cell(get(s, 'libvirt', op)),
    cell(get(s, 'kvmnet CLI', op)),
    cell(get(s, 'kvmnet CLI+serve', op)),
    cell(get(s, 'kvmnet API', op)),
    ratioCell(s, 'kvmnet CLI', op, GOALS[op]?.cli),
    ratioCell(s, 'kvmnet CLI+serve', op, GOALS[op]?.cli),
    ratioCell(s, 'kvmnet API', op, GOALS[op]?.api),
  ]);
}

const HEAD = [
  'operation',
  'libvirt (virsh)',
  'kvmnet CLI alone',
  'kvmnet CLI, serve running',
  'kvmnet API',
  'CLI alone / libvirt',
  'CLI+serve / libvirt',
  'API / libvirt',
];

function bulkLines(s: Samples): string[] {
  const lvUp = get(s, 'libvirt', 'manyUp');
  const lvDown = get(s, 'libvirt', 'manyDown');
  const r = (a: Stats | null, b: Stats | null): string =>
    a && b ? `; / libvirt ${goal(ratio(a.median, b.median), 0.3)}` : '';
  const lines = (tool: string, title: string): string[] => {
    const up = get(s, tool, 'manyUp');
    const down = get(s, tool, 'manyDown');
    return [
      title,
      `  define+start: ${cell(up)}${r(up, lvUp)}`,
      `  stop+undefine: ${cell(down)}${r(down, lvDown)}`,
    ];
  };
  return [
    ...lines(
      'kvmnet apply+up',
      `kvmnet bulk form of the ${NETS}-network cycle, CLI (one \`apply -f\` + one \`up\`; one \`apply -f\` to remove):`,
    ),
    ...lines(
      'kvmnet API apply+up',
      `The same through the API (\`POST /api/apply\` + \`POST /api/up\`; \`POST /api/apply\` with no networks to remove):`,
    ),
  ];
}

function report(s: Samples, skipped: string | null): void {
  const out = [
    `control plane, kvmnet vs libvirt: median (min–max) over ${ROUNDS} rounds, wall time of whole commands`,
  ];
  if (skipped) out.push(`  (libvirt skipped: ${skipped})`);
  for (const row of rows(s)) {
    out.push(`  ${row[0]}:`);
    out.push(`    libvirt ${row[1]} | CLI alone ${row[2]} | CLI+serve ${row[3]} | API ${row[4]}`);
    out.push(`    CLI alone/libvirt ${row[5]} | CLI+serve/libvirt ${row[6]} | API/libvirt ${row[7]}`);
  }
  out.push(...bulkLines(s));
  process.stdout.write(out.join('\n') + '\n');
}

async function writeDocs(s: Samples, skipped: string | null): Promise<void> {
  const virshV = (await run('virsh', ['--version'])).stdout.trim() || 'not installed';
  const body = [
    `\`node dist/bench/control-plane.js --write\` (part of \`npm run bench\`), ${machine()}, libvirt ${virshV}.`,
    `Median (min–max) of ${ROUNDS} rounds; each round runs every tool once, the first tool rotating.`,
    "libvirt is Debian's libvirtd in its own lab namespace (warm, `virsh -c qemu:///system`); kvmnet runs",
    'in another lab, its CLI one process per command, run as a command like virsh (bin/kvmnet, its',
    '`#!/bin/sh` launcher and Node.js start-up included): alone',
    '(`KVMNET_NO_DAEMON=1`, the engine in its own process) and with `kvmnet serve` running, which it',
    'hands define, start, stop, undefine and the reservation to, as virsh does libvirtd; its API over',
    "`kvmnet serve`'s Unix socket. The bulk CLI form runs alone.",
    'The reservation is `virsh net-update NET add|delete ip-dhcp-host',
    '… --live --config` against `kvmnet libvirt interface NET --vm res1 --mac … --ip …` / `kvmnet port del`',
    '(a port without a tap); through the API it is `POST /api/ports` with `"tap": "libvirt"` and `DELETE /api/ports/res1`.',
    skipped ? `\n**libvirt skipped in this run:** ${skipped}\n` : '',
    table(HEAD, rows(s)),
    '',
    // Each title its own paragraph, its two figures a list under it.
    ...bulkLines(s).map((l) => (l.startsWith('  ') ? l.replace(/^ {2}/, '- ') : `\n${l}\n`)),
  ].join('\n');
  await writeSection('Control plane vs libvirt (bench/control-plane.ts)', body);
}

runMain(main);
