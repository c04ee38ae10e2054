// The benches' goal cells (bench/lib/stats.ts): a ratio just past its limit is not printed as the limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { goal, stats } from '../../bench/lib/stats.js';

test('goal: met or NOT met, with a third digit only where two would show the limit itself', () => {
  assert.equal(goal(0.2, 0.25), '0.20 (goal ≤ 0.25: met)');
  assert.equal(goal(0.25, 0.25), '0.25 (goal ≤ 0.25: met)');
  assert.equal(goal(0.252, 0.25), '0.252 (goal ≤ 0.25: NOT met)');
  assert.equal(goal(0.26, 0.25), '0.26 (goal ≤ 0.25: NOT met)');
  assert.equal(goal(0.949, 0.95, false), '0.949 (goal ≥ 0.95: NOT met)');
  assert.equal(goal(0.97, 0.95, false), '0.97 (goal ≥ 0.95: met)');
  assert.equal(goal(NaN, 0.3), 'n/a (goal ≤ 0.3)');
});

test('stats: median of an even count is the mean of the middle two', () => {
  assert.deepEqual(stats([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, n: 4 });
  assert.deepEqual(stats([5]), { median: 5, min: 5, max: 5, n: 1 });
});
