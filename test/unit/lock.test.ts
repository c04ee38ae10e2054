// The state lock (src/engine/lock.ts): one holder at a time, and a holder killed with SIGKILL
// leaves no stale lock (its lock file may stay; it means nothing).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { acquireLock, startTime, TurnQueue } from '../../src/engine/lock.js';

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

test('TurnQueue: turns run one at a time, first come first served, a failed one included', async () => {
  const q = new TurnQueue();
  const log: string[] = [];
  const turn = (name: string, fail = false) =>
    q.run(async () => {
      log.push(`${name} in`);
      await new Promise((r) => setTimeout(r, 5));
      log.push(`${name} out`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    });
  const results = await Promise.allSettled([turn('a'), turn('b', true), turn('c')]);
  assert.deepEqual(log, ['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason))),
    ['a', 'Error: b failed', 'c'],
  );
});

test('TurnQueue: a turn that waits too long gives up; the ones after it still wait their turn', async () => {
  const q = new TurnQueue();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const log: string[] = [];
  const first = q.run(async () => {
    await held;
    log.push('first');
  });
  const impatient = q.run(() => Promise.resolve(log.push('impatient')), 50);
  const third = q.run(() => Promise.resolve(log.push('third')));
  await assert.rejects(impatient, (e: Error & { code?: string }) => {
    assert.equal(e.code, 'locked');
    assert.match(e.message, /busy with this process's other operations/);
    return true;
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(log, [], 'the third turn ran before the first finished');
  release();
  await Promise.all([first, third]);
  assert.deepEqual(log, ['first', 'third']);
});
