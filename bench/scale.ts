// Benchmark (issue 9, part 2): one network with many ports and forwards. The cost of one more port
// and of one more forward with few present (5 ports, 10 forwards) against many (200 ports, 1,000
// forwards), measured in the same run (goal ratio <= 1.5: O(1)), and the state store's size on disk
// and in memory. Few and many are two namespace labs, measured in alternating blocks; both are
// removed afterwards.
//   node dist/bench/scale.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_ROUNDS (15), KVMNET_BENCH_PORTS (200), KVMNET_BENCH_FORWARDS (1000).
// With --inside (run by the bench itself in the lab's host namespace, node --expose-gc) it times
// Engine.portAdd / Engine.forwardAdd in-process, without the CLI's process start-up.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import { Paths } from '../src/engine/paths.js';
import { Lab, REPO } from '../test/lib/lab.js';
import { run } from '../test/lib/proc.js';
import {
  cleanupOnSignal,
  fmt,
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
  writeSection,
} from './lib/stats.js';

const ROUNDS = rounds(15);
const FEW_PORTS = 5;
const FEW_FORWARDS = 10;
const MANY_PORTS = knob('KVMNET_BENCH_PORTS', 200);
const MANY_FORWARDS = knob('KVMNET_BENCH_FORWARDS', 1000);
const PROBE_FWD = 40000;
const PROBE_MAC = '52:54:00:9c:ff:01';
const PROBE_IP = '192.168.122.250';

function engine(): Engine {
  return new Engine({
    paths: new Paths(process.env.KVMNET_STATE_DIR ?? '', process.env.KVMNET_RUN_DIR ?? ''),
  });
}

const mac = (i: number): string =>
  `52:54:00:9c:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
/** Reserved addresses .10 … .(10+n): up to 200 ports fit below the probe's .250. */
const portIp = (i: number): string => `192.168.122.${10 + i}`;

interface InsideResult {
  port?: number[];
  forward?: number[];
  storeHeap?: number;
}

/** Inside the host namespace: `ports N` adds ports 0..N-1 that are missing; `measure` times the probes. */
async function inside(mode: string, arg: number): Promise<void> {
  const e = engine();
  const result: InsideResult = {};
  if (mode === 'ports') {
    const have = new Set(Object.values((await e.store.load()).ports).map((p) => p.vm));
    for (let i = 0; i < arg; i++) {
      if (have.has(`vm${i}`)) continue;
      await e.portAdd({ network: 'default', vm: `vm${i}`, mac: mac(i), ip: portIp(i) }, { dryRun: false });
    }
  } else {
    result.port = [];
    result.forward = [];
    for (let i = 0; i < arg; i++) {
      let t0 = performance.now();
      await e.portAdd({ network: 'default', vm: 'probe', mac: PROBE_MAC, ip: PROBE_IP }, { dryRun: false });
      result.port.push(performance.now() - t0);
      await e.portDel('probe', 'default', { dryRun: false });
      t0 = performance.now();
      await e.forwardAdd(
        { network: 'default', proto: 'tcp', ports: String(PROBE_FWD), target: `${PROBE_IP}:80` },
        { dryRun: false },
      );
      result.forward.push(performance.now() - t0);
      await e.forwardDel('default', { id: `tcp/${PROBE_FWD}` }, { dryRun: false });
    }
    // The state as the engine holds it while working: heap growth per parsed copy (10 kept).
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const held = [];
    for (let i = 0; i < 10; i++) held.push(await e.store.load());
    gc?.();
    result.storeHeap = (process.memoryUsage().heapUsed - before) / held.length;
  }
  process.stdout.write(JSON.stringify(result));
}

async function insideRun(lab: Lab, ...args: string[]): Promise<InsideResult> {
  const r = await run(
    'ip',
    [
      'netns',
      'exec',
      lab.hostNs,
      process.execPath,
      '--expose-gc',
      join(REPO, 'dist/bench/scale.js'),
      '--inside',
      ...args,
    ],
    { env: lab.env(), timeoutMs: 1_800_000 },
  );
  if (r.code !== 0) throw new Error(`inside ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as InsideResult;
}

function forwardsYaml(exported: string, n: number): string {
  const lines = ['forwards:'];
  for (let i = 0; i < n; i++)
    lines.push(
      '  - network: default',
      '    proto: tcp',
      `    port: ${20000 + i}`,
      `    to: 192.168.122.${10 + (i % 200)}:80`,
    );
  return exported.replace(/^forwards:.*$[\s\S]*/m, lines.join('\n') + '\n');
}

interface Point {
  ports: number;
  forwards: number;
  enginePort: number[];
  engineFwd: number[];
  cliPort: number[];
  cliFwd: number[];
  stateBytes: number;
  storeHeap: number;
}

/** `rounds` probes in `lab` (engine in one process, then the CLI), added to `into`. */
async function measure(lab: Lab, rounds: number, into: Point): Promise<void> {
  const inner = await insideRun(lab, 'measure', String(rounds));
  const cliPort: number[] = [];
  const cliFwd: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t0 = performance.now();
    await lab.kvmnetCommandOk(
      {},
      'port',
      'add',
      'default',
      '--vm',
      'probe',
      '--mac',
      PROBE_MAC,
      '--ip',
      PROBE_IP,
    );
    cliPort.push(performance.now() - t0);
    await lab.kvmnetOk('port', 'del', 'probe', '--network', 'default');
    t0 = performance.now();
    await lab.kvmnetCommandOk({}, 'forward', 'add', 'default', 'tcp', String(PROBE_FWD), `${PROBE_IP}:80`);
    cliFwd.push(performance.now() - t0);
    await lab.kvmnetOk('forward', 'del', 'default', 'tcp', String(PROBE_FWD));
  }
  into.enginePort.push(...(inner.port ?? []));
  into.engineFwd.push(...(inner.forward ?? []));
  into.cliPort.push(...cliPort);
  into.cliFwd.push(...cliFwd);
  into.stateBytes = (await stat(join(lab.stateDir, 'kvmnet.json'))).size;
  into.storeHeap = inner.storeHeap ?? NaN;
}

function point(ports: number, forwards: number): Point {
  return {
    ports,
    forwards,
    enginePort: [],
    engineFwd: [],
    cliPort: [],
    cliFwd: [],
    stateBytes: 0,
    storeHeap: NaN,
  };
}

function report(p: Point): void {
  const { ports, forwards, stateBytes, cliPort, cliFwd } = p;
  console.log(
    `  ${ports} ports, ${forwards} forwards present: one more port: engine ${fmt(stats(p.enginePort))}, CLI ${fmt(stats(cliPort))}`,
  );
  console.log(`    one more forward: engine ${fmt(stats(p.engineFwd))}, CLI ${fmt(stats(cliFwd))}`);
  console.log(
    `    state file ${(stateBytes / 1024).toFixed(1)} KiB; parsed in the heap ${(p.storeHeap / 1024).toFixed(0)} KiB`,
  );
}

/** Blocks of rounds, few and many alternating (the first rotating), so both see the same machine. */
const BLOCKS = 3;

async function main(): Promise<void> {
  // Two labs, one with few and one with many, measured in alternating blocks: a ratio of two
  // phases run minutes apart would measure the machine's drift as much as kvmnet.
  const fewLab = await Lab.create('bscalef');
  let manyLab: Lab | undefined;
  const cleanup = cleanupOnSignal(async () => {
    for (const l of [fewLab, manyLab]) {
      if (!l) continue;
      await l.kvmnet('down').catch(() => undefined);
      await l.destroy();
    }
  });
  try {
    manyLab = await Lab.create('bscalem');
    console.log(
      `scale: one NAT network, ${ROUNDS} rounds per probe in ${BLOCKS} blocks, few and many alternating (median (min, max))`,
    );
    const setUp = async (
      lab: Lab,
      ports: number,
      forwards: number,
    ): Promise<{ portsMs: number; applyMs: number }> => {
      await lab.kvmnetOk('up');
      const file = join(lab.dir, 'forwards.yaml');
      let t0 = performance.now();
      await insideRun(lab, 'ports', String(ports));
      const portsMs = performance.now() - t0;
      await writeFile(file, forwardsYaml(await lab.kvmnetOk('export'), forwards));
      t0 = performance.now();
      await lab.kvmnetOk('apply', '-f', file);
      return { portsMs, applyMs: performance.now() - t0 };
    };
    await setUp(fewLab, FEW_PORTS, FEW_FORWARDS);
    note(`adding ${MANY_PORTS} ports and ${MANY_FORWARDS} forwards in the second lab…`);
    const { portsMs, applyMs } = await setUp(manyLab, MANY_PORTS, MANY_FORWARDS);
    console.log(
      `  adding ${MANY_PORTS} ports one by one (engine): ${ms(portsMs)}; one apply adding ${MANY_FORWARDS} forwards: ${ms(applyMs)}`,
    );
    const few = point(FEW_PORTS, FEW_FORWARDS);
    const many = point(MANY_PORTS, MANY_FORWARDS);
    const per = Math.max(1, Math.ceil(ROUNDS / BLOCKS));
    for (let b = 0; b < BLOCKS; b++) {
      const order: Array<[Lab, Point]> = [
        [fewLab, few],
        [manyLab, many],
      ];
      if (b % 2 === 1) order.reverse();
      for (const [lab, p] of order) await measure(lab, per, p);
    }
    report(few);
    report(many);
    const r = (f: (p: Point) => number[]): number => ratio(stats(f(many)).median, stats(f(few)).median);
    console.log(
      `ratio many/few (goal ≤ 1.5): port engine ${goal(
        r((p) => p.enginePort),
        1.5,
      )}, CLI ${goal(
        r((p) => p.cliPort),
        1.5,
      )}`,
    );
    console.log(
      `                            forward engine ${goal(
        r((p) => p.engineFwd),
        1.5,
      )}, CLI ${goal(
        r((p) => p.cliFwd),
        1.5,
      )}`,
    );
    const perItem =
      (many.stateBytes - few.stateBytes) /
      Math.max(1, MANY_PORTS - FEW_PORTS + (MANY_FORWARDS - FEW_FORWARDS));
    console.log(
      `state store: ${(few.stateBytes / 1024).toFixed(1)} KiB → ${(many.stateBytes / 1024).toFixed(1)} KiB on disk (≈ ${perItem.toFixed(0)} bytes per port or forward); heap ${(few.storeHeap / 1024).toFixed(0)} KiB → ${(many.storeHeap / 1024).toFixed(0)} KiB`,
    );
    const row = (name: string, f: (p: Point) => number[]): string[] => [
      name,
      ms(stats(f(few)).median),
      ms(stats(f(many)).median),
      goal(r(f), 1.5),
    ];
    await writeSection(
      'Scale: ports and forwards on one network (bench/scale.ts)',
      [
        `\`node dist/bench/scale.js --write\`, ${machine()}; median of ${per * BLOCKS} rounds. One more port (tap,`,
        'reservation) and one more forward, added and removed again, with few and with many present on one',
        'running NAT network. "engine" times the Engine call in-process in the lab\'s host namespace; "CLI" the',
        `whole \`kvmnet\` command. Few and many are two labs, measured in ${BLOCKS} alternating blocks of ${per}`,
        'rounds, so both see the same machine.',
        '',
        table(
          [
            'one more …',
            `${FEW_PORTS} ports, ${FEW_FORWARDS} forwards`,
            `${MANY_PORTS} ports, ${MANY_FORWARDS} forwards`,
            'ratio',
          ],
          [
            row('port (engine)', (p) => p.enginePort),
            row('port (CLI)', (p) => p.cliPort),
            row('forward (engine)', (p) => p.engineFwd),
            row('forward (CLI)', (p) => p.cliFwd),
          ],
        ),
        '',
        `- State file: ${(few.stateBytes / 1024).toFixed(1)} KiB → ${(many.stateBytes / 1024).toFixed(1)} KiB (about ${perItem.toFixed(0)} bytes per port or forward); parsed, ${(few.storeHeap / 1024).toFixed(0)} KiB → ${(many.storeHeap / 1024).toFixed(0)} KiB of heap.`,
        `- Adding ${MANY_PORTS} ports one by one: ${ms(portsMs)}; one \`apply\` adding ${MANY_FORWARDS} forwards: ${ms(applyMs)}.`,
        '- One more port is a port delta (Engine.planPortDelta): its tap, its anti-spoofing set elements, the hosts files and a SIGHUP; no nft table or link list is read, so what grows with many is file I/O (the state file, the hosts files) and a pass over the stored ports.',
      ].join('\n'),
    );
  } finally {
    await cleanup();
  }
}

const i = process.argv.indexOf('--inside');
if (i >= 0) await inside(process.argv[i + 1] ?? 'measure', Number(process.argv[i + 2] ?? 0));
else runMain(main);
