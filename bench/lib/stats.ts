// Shared by the benchmarks: median/min/max of samples, ratio and goal formatting, timing of
// commands, an env knob reader, and writing one section of docs/performance.md (only on request).
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO } from '../../test/lib/lab.js';
import { run } from '../../test/lib/proc.js';

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median =
    s.length === 0 ? NaN : s.length % 2 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  return { median, min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, n: s.length };
}

export function median(xs: number[]): number {
  return stats(xs).median;
}

/** `12.3 ms (min 11.0, max 15.2)`; `unit` and `digits` for other quantities. */
export function fmt(s: Stats, unit = 'ms', digits = 1): string {
  return `${s.median.toFixed(digits)} ${unit} (min ${s.min.toFixed(digits)}, max ${s.max.toFixed(digits)})`;
}

/** Milliseconds as the docs show them: `87 ms`, `2.4 s`. */
export function ms(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 1 : 0)} ms`;
}

export function ratio(a: number, b: number): number {
  return b === 0 ? NaN : a / b;
}

/** `0.42× (goal ≤ 0.5×: met)`; `lowerIsBetter` false for goals like "≥ 0.95". */
export function goal(r: number, limit: number, lowerIsBetter = true): string {
  if (!Number.isFinite(r)) return `n/a (goal ${lowerIsBetter ? '≤' : '≥'} ${limit})`;
  const met = lowerIsBetter ? r <= limit : r >= limit;
  // A third digit where two would print the limit itself next to "NOT met" (0.252 against 0.25).
  const shown = !met && r.toFixed(2) === limit.toFixed(2) ? r.toFixed(3) : r.toFixed(2);
  return `${shown} (goal ${lowerIsBetter ? '≤' : '≥'} ${limit}: ${met ? 'met' : 'NOT met'})`;
}

/** Wall time of `f` in ms. */
export async function time(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

/** A numeric knob from the environment (smoke runs set tiny values). */
export function knob(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a non-negative number`);
  return n;
}

/** Rounds per measurement: KVMNET_BENCH_ROUNDS, else each bench's own default. */
export function rounds(dflt: number): number {
  return knob('KVMNET_BENCH_ROUNDS', dflt);
}

/** `--write` or KVMNET_BENCH_WRITE=1: results go into docs/performance.md. */
export const WRITE_DOCS = process.argv.includes('--write') || process.env.KVMNET_BENCH_WRITE === '1';

export function machine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model.trim() ?? 'unknown CPU'}, Linux ${release()}, Node.js ${process.version}`;
}

/** A markdown table from a header row and body rows. */
export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Replaces the section `## HEADING` of docs/performance.md (up to the next `## `) with `body`, or
 * appends it. Other sections are left as they are. Does nothing unless WRITE_DOCS.
 */
export async function writeSection(heading: string, body: string): Promise<void> {
  if (!WRITE_DOCS) return;
  const file = join(REPO, 'docs/performance.md');
  const text = await readFile(file, 'utf8');
  const section = `## ${heading}\n\n${body.trim()}\n`;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l === `## ${heading}`);
  let out: string;
  if (start < 0) out = `${text.trimEnd()}\n\n${section}`;
  else {
    let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
    if (end < 0) end = lines.length;
    const before = lines.slice(0, start).join('\n');
    const after = lines.slice(end).join('\n');
    out = `${before}\n${section}${after ? `\n${after}` : ''}`;
  }
  await writeFile(file, out.replace(/\n{3,}/g, '\n\n').trimEnd() + '\n');
  // Tables come out unaligned: the repository's prettier lays them out as `npm run check` wants.
  const prettier = join(REPO, 'node_modules/.bin/prettier');
  if (existsSync(prettier)) await run(prettier, ['--write', file]);
  process.stderr.write(`bench: wrote section "${heading}" of docs/performance.md\n`);
}

/** Logs progress on stderr (results go to stdout). */
export function note(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

const cleanups: Array<() => Promise<void>> = [];

/**
 * Registers a bench's cleanup (its `finally` body) to run also on SIGINT/SIGTERM, so an interrupted
 * run leaves no namespace, process or libvirt network behind. Returns it wrapped to run once.
 */
export function cleanupOnSignal(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  const once = (): Promise<void> => (p ??= fn());
  cleanups.push(once);
  return once;
}

/** Runs `main`, printing the error and exiting 1 on failure (cleanup is main's own `finally`). */
export function runMain(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      note(`${sig}: cleaning up`);
      void (async () => {
        for (const c of [...cleanups].reverse())
          await c().catch((e: unknown) => note(`cleanup: ${String(e)}`));
        process.exit(130);
      })();
    });
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
