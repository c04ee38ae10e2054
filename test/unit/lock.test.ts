// The state lock (src/engine/lock.ts): one holder at a time, and a holder killed with SIGKILL
// leaves no stale lock (its lock file may stay; it means nothing).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { acquireLock, startTime } from '../../src/engine/lock.js';

test('a second taker waits for the release, then gets the lock', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kvmnet-lock-'));
  try {
    const path = join(dir, 'kvmnet.lock');
    const first = await acquireLock(path);
    assert.equal((await readFile(path, 'utf8')).trim(), `${process.pid} ${startTime(process.pid)}`);
    const notes: string[] = [];
    let second = false;
    const taking = acquireLock(path, { note: (s) => notes.push(s) }).then((l) => {
      second = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(second, false, 'taken while held');
    assert.deepEqual(notes, [`waiting for the kvmnet lock held by process ${process.pid}`]);
    await first.release();
    const l = await taking;
    await l.release();
    await assert.rejects(stat(path), 'the lock file goes on release');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a holder killed with SIGKILL leaves no stale lock', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kvmnet-lock-'));
  try {
    const path = join(dir, 'kvmnet.lock');
    const lockJs = pathToFileURL(
      join(fileURLToPath(new URL('.', import.meta.url)), '../../src/engine/lock.js'),
    ).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { acquireLock } = await import(${JSON.stringify(lockJs)});
         await acquireLock(${JSON.stringify(path)}); console.log('held'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((res) => child.stdout.on('data', () => res()));
    await assert.rejects(acquireLock(path, { timeoutMs: 200 }), /locked by process \d+ for 0 s/);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    assert.ok((await readFile(path, 'utf8')).startsWith(`${child.pid} `), 'the dead holder left its file');
    const t0 = Date.now();
    const l = await acquireLock(path, { timeoutMs: 1000 });
    assert.ok(Date.now() - t0 < 1000);
    await l.release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a state directory that cannot be made is a clear error, not a hang (Node 20 mkdir -p on /proc)', async () => {
  await assert.rejects(acquireLock('/proc/nonexistent-kvmnet/x/kvmnet.lock', { timeoutMs: 1000 }), {
    code: 'state-dir-unusable',
    message: /cannot make the state directory \/proc\/nonexistent-kvmnet\/x: .*ENOENT/,
  });
});
