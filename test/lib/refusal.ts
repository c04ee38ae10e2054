// The contract for bad input, checked the same way everywhere: exit 2, exactly one `error:` line
// naming the problem and one `hint:` line, nothing on stdout, and the host and the stored state
// exactly as before.
import assert from 'node:assert/strict';
import type { Lab } from './lab.js';

export async function assertRefused(
  lab: Lab,
  args: string[],
  error: RegExp,
  opts: { env?: NodeJS.ProcessEnv; ignoreFiles?: (path: string) => boolean } = {},
): Promise<void> {
  const before = await lab.snapshot();
  const r = await lab.kvmnetEnv(opts.env ?? {}, ...args);
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^error: /);
  assert.match(lines[0] ?? '', error);
  assert.match(lines[1] ?? '', /^hint: ./, 'a hint says how to fix it');
  assert.equal(lines.length, 2, `one error line and one hint, got: ${r.stderr}`);
  assert.equal(r.stdout, '');
  const after = await lab.snapshot();
  const ignore = opts.ignoreFiles;
  if (ignore) {
    for (const snap of [before, after])
      for (const k of Object.keys(snap.files)) if (ignore(k)) delete snap.files[k];
  }
  assert.deepEqual(after, before, 'nothing changed');
}
