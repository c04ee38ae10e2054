// renderResult: the one-line summary of each network's plan after a command that changed something.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderResult } from '../../src/cli/output.js';
import type { Step } from '../../src/engine/plan.js';

const step: Step = { kind: 'ip', why: 'x', lines: ['link set dev virbr0 up'], undo: [] };
const result = (action: 'start' | 'update' | 'stop', steps: Step[]) => ({
  dryRun: false,
  definitions: [],
  plans: [{ network: 'default', action, steps }],
  notes: [],
});

test('a running network brought in line is "updated", not "stopped"', () => {
  assert.equal(renderResult(result('update', [step])), 'network default: updated (1 step)\n');
  assert.equal(renderResult(result('start', [step, step])), 'network default: started (2 steps)\n');
  assert.equal(renderResult(result('stop', [step])), 'network default: stopped (1 step)\n');
});

test('nothing to do: running for a start or an update, not running for a stop', () => {
  assert.equal(renderResult(result('update', [])), 'network default: running, nothing to do\n');
  assert.equal(renderResult(result('start', [])), 'network default: running, nothing to do\n');
  assert.equal(renderResult(result('stop', [])), 'network default: not running, nothing to do\n');
});
