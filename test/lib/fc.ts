// fast-check for kvmnet's property tests: a fixed seed and a bounded number of runs, so a CI run
// takes seconds and a failure replays exactly. KVMNET_FC_SEED overrides the seed (a failure prints
// the seed and path to replay), KVMNET_FC_RUNS the runs per property (e.g. 10000 for a long soak).
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { KvmnetError } from '../../src/model/errors.js';

export const DEFAULT_SEED = 20261201;

export function fcSeed(): number {
  const s = Number(process.env.KVMNET_FC_SEED);
  return Number.isInteger(s) ? s : DEFAULT_SEED;
}

/** Runs per property: KVMNET_FC_RUNS, or `dflt` (each property picks what keeps it fast). */
export function fcRuns(dflt: number): number {
  const n = Number(process.env.KVMNET_FC_RUNS);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

export function fcParams(dfltRuns: number): fc.Parameters<unknown> {
  return { seed: fcSeed(), numRuns: fcRuns(dfltRuns), endOnFailure: true, includeErrorInReport: true };
}

export function fcAssert<T>(prop: fc.IPropertyWithHooks<T>, dfltRuns: number): void {
  fc.assert(prop, fcParams(dfltRuns) as fc.Parameters<T>);
}

export async function fcAssertAsync<T>(prop: fc.IAsyncPropertyWithHooks<T>, dfltRuns: number): Promise<void> {
  await fc.assert(prop, fcParams(dfltRuns) as fc.Parameters<T>);
}

/** The contract for any text kvmnet shows a user: one line, no stack trace, not empty. */
export function assertOneLine(text: string, what = 'message'): void {
  assert.ok(text.length > 0, `${what} is empty`);
  assert.ok(!/[\n\r\u2028\u2029]/.test(text), `${what} spans lines: ${JSON.stringify(text)}`);
  // eslint-disable-next-line no-control-regex
  assert.ok(!/[\x00-\x1f\x7f]/.test(text), `${what} has control characters: ${JSON.stringify(text)}`);
  assert.ok(
    !/\bat .*\(.*:\d+:\d+\)|node:internal|\.js:\d+/.test(text),
    `${what} looks like a stack: ${text}`,
  );
  assert.ok(text.length <= 1000, `${what} is ${text.length} characters long`);
}

/**
 * Calls fn: it returns, or throws kvmnet's own error (kind "input", exit 2) with a one-line
 * message and hint. Anything else thrown (TypeError, RangeError, a library's error) fails.
 */
export function outcome<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: KvmnetError } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    assert.ok(e instanceof KvmnetError, `threw something other than a KvmnetError: ${inspect(e)}`);
    assertInputError(e);
    return { ok: false, error: e };
  }
}

export function assertInputError(e: KvmnetError): void {
  assert.equal(e.kind, 'input', `kind of ${e.code}: ${e.message}`);
  assert.equal(e.exitCode, 2);
  assertOneLine(e.message);
  if (e.hint !== undefined) assertOneLine(e.hint, 'hint');
}

/** Strings that break parsers and renderers: control characters, quotes, shell and config syntax. */
export const HOSTILE_STRINGS = [
  '',
  ' ',
  '-',
  '--',
  '-x',
  '--help',
  'help',
  '.',
  '..',
  '../../etc/passwd',
  'a\nb',
  'a\r\nb',
  'a\0b',
  'x;rm -rf /',
  '$(id)',
  '`id`',
  "'",
  '"',
  '\\',
  '#comment',
  'a #b',
  '}',
  '{',
  ' } ; flush ruleset ; {',
  'x\ndhcp-script=/tmp/evil',
  'x,dhcp-script=/tmp/evil',
  '__proto__',
  'constructor',
  'toString',
  '%00',
  '%',
  '\u00e9t\u00e9',
  '\u202e',
  '\u2028',
  'x'.repeat(300),
  'a'.repeat(64),
  '10.0.0.0/24',
  '52:54:00:00:00:01',
  '1-65535',
  '0',
  '-1',
  '1e9',
  'NaN',
];

/** A string that is often hostile: the list above, random unicode, or random printable ASCII. */
export function hostileString(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
    { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ maxLength: 8 }))
        .map(([a, b]) => a + b),
    },
  );
}

/** Any JSON-ish value, hostile strings included: what an untyped body or YAML value may hold. */
export function hostileValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 4, arbitrary: hostileString() },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.constantFrom(0, -1, 1.5, 65536, 2 ** 32, Number.MAX_SAFE_INTEGER, 1e308) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.array(hostileString(), { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.dictionary(hostileString(), hostileString(), { maxKeys: 3 }) },
  );
}

/**
 * An object with some of `keys` (given a value of the right type or a hostile one) and now and
 * then an unknown key: the shape of a schema, filled with trouble.
 */
export function shaped(keys: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [k, good] of Object.entries(keys))
    parts[k] = fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: hostileValue() });
  return fc
    .tuple(
      fc.record(parts, { requiredKeys: [] }),
      fc.option(fc.tuple(hostileString(), hostileValue()), { freq: 8 }),
    )
    .map(([o, extra]) => (extra ? { ...o, [extra[0]]: extra[1] } : o));
}
