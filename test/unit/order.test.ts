// src/model/order.ts sorts names in the order ICU's localeCompare gives (the daemon no longer asks
// ICU, to keep its collation data and collators out of memory): checked against localeCompare here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareNames, compareNatural } from '../../src/model/order.js';

const SEED = Number(process.env.KVMNET_FC_SEED ?? 20261201);
const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 8,
});
// Names, taps, MACs and addresses: what kvmnet sorts, with digit runs and case differences likely.
const nameLike = fc.stringMatching(/^[A-Za-z0-9_.:-]{0,10}$/);
const digitsAndCase = fc.string({
  unit: fc.constantFrom('0', '1', '9', 'a', 'A', 'b', 'B', '-', '.', '_'),
  maxLength: 8,
});

for (const [label, arb] of [
  ['printable ASCII', printable],
  ['name-like', nameLike],
  ['digits and case', digitsAndCase],
] as const) {
  test(`compareNames orders ${label} as localeCompare does`, () => {
    fc.assert(
      fc.property(arb, arb, (a, b) => compareNames(a, b) === Math.sign(a.localeCompare(b))),
      { seed: SEED, numRuns: 3000 },
    );
  });
  test(`compareNatural orders ${label} as localeCompare('en', numeric) does`, () => {
    fc.assert(
      fc.property(
        arb,
        arb,
        (a, b) => compareNatural(a, b) === Math.sign(a.localeCompare(b, 'en', { numeric: true })),
      ),
      { seed: SEED, numRuns: 3000 },
    );
  });
}

test('examples', () => {
  assert.deepEqual(['vm10', 'vm2', 'VM2', 'vm-1', 'vm_1'].sort(compareNatural), [
    'vm_1',
    'vm-1',
    'vm2',
    'VM2',
    'vm10',
  ]);
  assert.deepEqual(['b', 'B', 'a', 'A', '_x', '1'].sort(compareNames), ['_x', '1', 'a', 'A', 'b', 'B']);
  assert.equal(compareNatural('a01', 'a1'), 0);
});
