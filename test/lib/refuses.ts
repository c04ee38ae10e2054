// Unit-test form of the bad-input contract: the call throws a KvmnetError of kind "input"
// (exit 2) with exactly this code and message, and this hint when one is given.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { KvmnetError } from '../../src/model/errors.js';

export interface ExpectedError {
  code: string;
  message: string;
  hint?: string;
}

export function refuses(fn: () => unknown, want: ExpectedError): KvmnetError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected a ${want.code} error, nothing was thrown`);
  assert.ok(caught instanceof KvmnetError, `expected a KvmnetError, got ${inspect(caught)}`);
  assert.equal(caught.code, want.code);
  assert.equal(caught.message, want.message);
  if (want.hint !== undefined) assert.equal(caught.hint, want.hint);
  assert.equal(caught.kind, 'input');
  assert.equal(caught.exitCode, 2);
  return caught;
}
