// Benchmark (issue 4): the cost of one more port forward with 10 and with 1,000 present, measured
// in the same run, in a namespace lab. Prints median/min/max and the ratio (goal <= 1.5), the time
// of one `apply` that adds 1,000 forwards, and what nft holds (a map, not 1,000 rules).
//   npm run bench            (as root; never part of the test command)
// With --inside (run by the bench itself inside the lab's host namespace) it times Engine.forwardAdd
// in-process, without the CLI's process start-up.
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import { Paths } from '../src/engine/paths.js';
import { Lab, REPO } from '../test/lib/lab.js';
import { run } from '../test/lib/proc.js';
import { fmt, rounds, stats, type Stats } from './lib/stats.js';

const ROUNDS = rounds(15);
const PROBE_PORT = 40000;

/** In the host namespace: add and remove one forward ROUNDS times, timing the adds. */
async function inside(): Promise<void> {
  const engine = new Engine({
    paths: new Paths(process.env.KVMNET_STATE_DIR ?? '', process.env.KVMNET_RUN_DIR ?? ''),
  });
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await engine.forwardAdd(
      { network: 'default', proto: 'tcp', ports: String(PROBE_PORT), target: '192.168.122.5:80' },
      { dryRun: false },
    );
    samples.push(performance.now() - t0);
    await engine.forwardDel('default', { id: `tcp/${PROBE_PORT}` }, { dryRun: false });
  }
  process.stdout.write(JSON.stringify(samples));
}

function forwardsYaml(exported: string, n: number): string {
  const lines = ['forwards:'];
  for (let i = 0; i < n; i++) {
    lines.push(
      '  - network: default',
      '    proto: tcp',
      `    port: ${20000 + i}`,
      `    to: 192.168.122.${10 + (i % 200)}:80`,
    );
  }
  return exported.replace(/^forwards:.*$[\s\S]*/m, lines.join('\n') + '\n');
}

async function measure(lab: Lab, present: number): Promise<{ engine: Stats; cli: Stats }> {
  const engineRun = await run(
    'ip',
    ['netns', 'exec', lab.hostNs, process.execPath, join(REPO, 'dist/bench/forwards.js'), '--inside'],
    {
      env: lab.env(),
      timeoutMs: 600_000,
    },
  );
  if (engineRun.code !== 0) throw new Error(`inside run failed: ${engineRun.stderr}`);
  const engine = stats(JSON.parse(engineRun.stdout) as number[]);
  const cli: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await lab.kvmnetCommandOk({}, 'forward', 'add', 'default', 'tcp', String(PROBE_PORT), '192.168.122.5:80');
    cli.push(performance.now() - t0);
    await lab.kvmnetOk('forward', 'del', 'default', 'tcp', String(PROBE_PORT));
  }
  console.log(`  ${present} forwards present: engine ${fmt(engine)}; CLI ${fmt(stats(cli))}`);
  return { engine, cli: stats(cli) };
}

async function main(): Promise<void> {
  const lab = await Lab.create('bench');
  try {
    await lab.kvmnetOk('up');
    const exported = await lab.kvmnetOk('export');
    const file = join(lab.dir, 'forwards.yaml');
    console.log(
      `kvmnet forwards benchmark (${ROUNDS} rounds each; nft ${execFileSync('nft', ['--version']).toString().trim()})`,
    );

    await writeFile(file, forwardsYaml(exported, 10));
    await lab.kvmnetOk('apply', '-f', file);
    const few = await measure(lab, 10);

    await writeFile(file, forwardsYaml(exported, 1000));
    const t0 = performance.now();
    await lab.kvmnetOk('apply', '-f', file);
    const applyMs = performance.now() - t0;
    console.log(`  one apply adding 990 forwards (to 1,000): ${applyMs.toFixed(0)} ms`);
    const many = await measure(lab, 1000);

    const table = await run('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    const dnatRules = (table.stdout.match(/dnat ip to/g) ?? []).length;
    const elements = (table.stdout.match(/tcp \. \d+ : /g) ?? []).length;
    console.log(`  nft: ${dnatRules} DNAT rules in all; ${elements} forward elements in map fwd_any`);
    const ratioEngine = many.engine.median / few.engine.median;
    const ratioCli = many.cli.median / few.cli.median;
    console.log(
      `ratio (1,000 vs 10 present), engine: ${ratioEngine.toFixed(2)}  CLI: ${ratioCli.toFixed(2)}  (goal <= 1.5)`,
    );
  } finally {
    await lab.destroy();
  }
}

if (process.argv.includes('--inside')) await inside();
else await main();
