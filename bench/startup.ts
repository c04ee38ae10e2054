// Benchmark: the kvmnet CLI's start-up. Wall time of whole commands against `node -e 0` (Node.js's
// own start-up, the floor for any CLI written for it), alternated round by round:
//   - when this environment sets NODE_EXTRA_CA_CERTS, `node -e 0` with it too (bin/kvmnet drops it;
//     every other row runs without it),
//   - `kvmnet --version` and `kvmnet --help` (no engine, no state), run as commands (bin/kvmnet's
//     `#!/bin/sh` launcher, node from PATH),
//   - `kvmnet net list` on an empty state dir and run dir (the engine loaded, state read, the
//     host's links looked at),
//   - the same two through the unbundled modules (dist/src/cli/main.js) for comparison with the
//     bundle bin/kvmnet runs (dist/cli/, rolldown.config.ts).
// Every command runs in a namespace the bench makes and deletes (`ip netns exec`, for all of them
// alike, the baseline included), with a temporary state dir and run dir.
//   node dist/bench/startup.js [--write]     (as root; part of `npm run bench`)
// Knobs: KVMNET_BENCH_ROUNDS (15; one more warm-up round is not counted).
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO } from '../test/lib/lab.js';
import { must, run } from '../test/lib/proc.js';
import {
  cleanupOnSignal,
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

const ROUNDS = rounds(15);
const NS = `kvmnet-bst-${process.pid}`;

interface Case {
  label: string;
  /** The command run with `ip netns exec`. */
  argv: string[];
  /** With this environment's NODE_EXTRA_CA_CERTS (the other rows run without it). */
  extraCerts?: boolean;
}

const CA = process.env.NODE_EXTRA_CA_CERTS;

function cases(stateDir: string, runDir: string): Case[] {
  const bin = join(REPO, 'bin/kvmnet');
  const node = process.execPath;
  const dirs = ['--state-dir', stateDir, '--run-dir', runDir];
  // The unbundled modules (ES modules, as tsc writes them), started from `node -e`.
  const unbundled = (args: string[]): string[] => [
    node,
    '-e',
    `import(${JSON.stringify(pathToFileURL(join(REPO, 'dist/src/cli/main.js')).href)}).then((m) => m.main([process.argv[0], 'kvmnet', ...process.argv.slice(1)]))`,
    '--',
    ...args,
  ];
  return [
    { label: '`node -e 0` (baseline)', argv: [node, '-e', '0'] },
    ...(CA
      ? [{ label: '`node -e 0` with NODE_EXTRA_CA_CERTS', argv: [node, '-e', '0'], extraCerts: true }]
      : []),
    { label: '`kvmnet --version`', argv: [bin, '--version'] },
    { label: '`kvmnet --help`', argv: [bin, '--help'] },
    { label: '`kvmnet net list` (empty state)', argv: [bin, ...dirs, 'net', 'list'] },
    { label: '`--version`, unbundled dist/src', argv: unbundled(['--version']) },
    { label: '`net list`, unbundled dist/src', argv: unbundled([...dirs, 'net', 'list']) },
  ];
}

async function once(c: Case): Promise<number> {
  let code = 0;
  let stderr = '';
  const env = { ...process.env };
  if (!c.extraCerts) delete env.NODE_EXTRA_CA_CERTS;
  const t = await time(async () => {
    ({ code, stderr } = await run('ip', ['netns', 'exec', NS, ...c.argv], { env }));
  });
  if (code !== 0) throw new Error(`${c.label} exited ${code}: ${stderr.trim()}`);
  return t;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kvmnet-bench-startup-'));
  const cleanup = cleanupOnSignal(async () => {
    await run('ip', ['netns', 'del', NS]);
    await rm(dir, { recursive: true, force: true });
  });
  try {
    await must('ip', ['netns', 'add', NS]);
    const list = cases(join(dir, 'state'), join(dir, 'run'));
    // Other work on the machine moves every row (the baseline too): the docs say how busy it was.
    const load = loadavg()
      .map((x) => x.toFixed(2))
      .join(' / ');
    const samples = list.map((): number[] => []);
    note(`${ROUNDS} rounds (+1 warm-up) of ${list.length} commands in namespace ${NS}`);
    for (let r = 0; r <= ROUNDS; r++)
      for (let k = 0; k < list.length; k++) {
        // The first command of a round rotates, so that none always runs right after another.
        const i = (k + r) % list.length;
        const c = list[i];
        const t = c === undefined ? NaN : await once(c);
        if (r > 0) samples[i]?.push(t);
      }
    const s = samples.map(stats);
    report(list, s);
    await writeDocs(list, s, load);
  } finally {
    await cleanup();
  }
}

const HEAD = ['command', 'median (min–max)', 'over `node -e 0`', '/ `node -e 0`'];

function rows(list: Case[], s: Stats[]): string[][] {
  const base = s[0]?.median ?? NaN;
  return list.map((c, i) => {
    const x = s[i] ?? stats([]);
    return [
      c.label,
      `${ms(x.median)} (${ms(x.min)}–${ms(x.max)})`,
      i === 0 ? '' : ms(x.median - base),
      ratio(x.median, base).toFixed(2),
    ];
  });
}

function report(list: Case[], s: Stats[]): void {
  const out = [`kvmnet CLI start-up: median (min–max) over ${ROUNDS} rounds, wall time of whole commands`];
  for (const row of rows(list, s)) out.push(`  ${row[0]}: ${row[1]}; +${row[2] || '0'}; ${row[3]}×`);
  process.stdout.write(out.join('\n') + '\n');
}

async function writeDocs(list: Case[], s: Stats[], load: string): Promise<void> {
  const body = [
    `\`node dist/bench/startup.js --write\` (part of \`npm run bench\`), ${machine()}, load average`,
    `${load} when it started. Median (min–max) of ${ROUNDS} rounds (after one warm-up round), the commands`,
    'alternated, the first rotating; each is a whole process run with `ip netns exec` in a namespace of',
    'its own, the baseline too, with an empty temporary state dir and run dir. The `kvmnet` rows run',
    'bin/kvmnet as a command (its `#!/bin/sh` launcher execs node), which runs the CommonJS bundle',
    '`npm run build` writes to dist/cli/ (rolldown.config.ts): `--version` and `--help` load one chunk',
    '(commander and the command definitions), `net list` adds the engine (without zod, which only',
    '`apply`, `export` and `serve` load). The "unbundled" rows load the same code as tsc wrote it',
    '(dist/src/: ES modules, one file per module, 45 for `net list`).',
    ...(CA
      ? [
          'This environment sets NODE_EXTRA_CA_CERTS, which Node.js 20 reads and parses at every start-up;',
          'bin/kvmnet drops it (kvmnet verifies no TLS peer), and every row but the second runs without it.',
        ]
      : []),
    '',
    table(HEAD, rows(list, s)),
  ].join('\n');
  await writeSection('CLI start-up (bench/startup.ts)', body);
}

runMain(main);
