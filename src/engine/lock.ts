// The state lock: one kvmnet process changes state at a time (CLI, daemon, hooks alike).
//
// The lock itself is an abstract Unix socket named after the state directory's lock file path
// (`\0kvmnet-lock-<sha256>`): binding it succeeds for one process only, and the kernel releases it
// when that process ends in any way, SIGKILL and power loss included, so a crash never leaves a
// stale lock. Abstract sockets belong to the network namespace, which is the one the holders
// manage anyway. Beside it, the lock file holds "PID STARTTIME" of the holder, for diagnostics
// only (`waiting for the kvmnet lock held by process PID`); a file left by a crashed holder is
// overwritten by the next one and means nothing.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rmdir, unlink, writeFile } from 'node:fs/promises';
import { makeDirs } from './fsutil.js';
import { createServer, type Server } from 'node:net';
import { dirname, resolve } from 'node:path';
import { procStatFields } from '../host/host.js';
import { failure } from '../model/errors.js';

/** How long a taker waits while one holder keeps the lock (acquireLock) or the queue (TurnQueue). */
export const LOCK_TIMEOUT_MS = 60_000;

export interface Lock {
  release(): Promise<void>;
}

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), '' if unknown. */
export function startTime(pid: number): string {
  try {
    return procStatFields(readFileSync(`/proc/${pid}/stat`, 'utf8'))[19] ?? '';
  } catch {
    return '';
  }
}

export function lockSocketName(path: string): string {
  return `\0kvmnet-lock-${createHash('sha256').update(resolve(path)).digest('hex').slice(0, 32)}`;
}

function tryBind(name: string): Promise<Server | null> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => {
      server.close();
      if (e.code === 'EADDRINUSE') res(null);
      else rej(e);
    });
    server.listen({ path: name, exclusive: true }, () => {
      server.unref();
      res(server);
    });
  });
}

/** Who holds the lock, from the lock file: "process PID" (or "another process"). */
async function holder(path: string): Promise<{ text: string; id: string }> {
  try {
    const id = (await readFile(path, 'utf8')).trim();
    const [pid, start] = id.split(' ');
    const n = Number(pid);
    if (Number.isInteger(n) && n > 0 && (start === undefined || startTime(n) === start))
      return { text: `process ${n}`, id };
    return { text: 'another process', id };
  } catch {
    return { text: 'another process', id: '' }; // not written yet
  }
}

export async function acquireLock(
  path: string,
  opts: { timeoutMs?: number; note?: (s: string) => void } = {},
): Promise<Lock> {
  // A dry run on a fresh host must leave nothing behind: a directory made only for the lock goes
  // again on release if nothing else was written into it.
  const made = await makeDirs(dirname(path)).catch((e: unknown) => {
    throw failure(
      'state-dir-unusable',
      `cannot make the state directory ${dirname(path)}: ${e instanceof Error ? e.message : String(e)}`,
      { hint: 'point --state-dir (KVMNET_STATE_DIR) at a writable directory' },
    );
  });
  const name = lockSocketName(path);
  // The wait times out only when one holder keeps the lock that long: behind a queue of other
  // commands that each finish, a command waits its turn however long the queue is.
  const timeoutMs = opts.timeoutMs ?? LOCK_TIMEOUT_MS;
  let deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  let noted = false;
  let wait = 2;
  for (;;) {
    const server = await tryBind(name);
    if (server) {
      await writeFile(path, `${process.pid} ${startTime(process.pid)}\n`, { mode: 0o600 });
      return {
        release: async () => {
          try {
            await unlink(path);
          } catch {
            /* already gone */
          }
          if (made !== undefined) {
            try {
              await rmdir(dirname(path));
            } catch {
              /* not empty: state was written */
            }
          }
          await new Promise<void>((r) => server.close(() => r()));
        },
      };
    }
    const h = await holder(path);
    if (h.id !== last) {
      if (last !== undefined) deadline = Date.now() + timeoutMs;
      last = h.id;
    }
    if (Date.now() > deadline) {
      throw failure(
        'locked',
        `the kvmnet state is locked by ${h.text} for ${Math.round(timeoutMs / 1000)} s`,
        {
          hint: `wait for it to finish (${path} names the holder), then run the command again`,
        },
      );
    }
    if (!noted) {
      opts.note?.(`waiting for the kvmnet lock held by ${h.text}`);
      noted = true;
    }
    // Tries again soon at first (most holders are done within a few ms), then every 20–60 ms.
    await new Promise((r) => setTimeout(r, Math.min(wait, 20) + Math.random() * wait));
    wait = Math.min(wait * 2, 40);
  }
}

/**
 * Turns in one process, first come first served, in front of the state lock: the daemon's requests
 * and its repair loop share one Engine, and each waits here for the one before it to finish (woken
 * at once) instead of polling the lock socket, which the process itself holds meanwhile. Gives up
 * with the `locked` error after `timeoutMs` in the queue; the turns after it still wait for the ones
 * before it.
 */
export class TurnQueue {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>, timeoutMs = LOCK_TIMEOUT_MS): Promise<T> {
    const before = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    this.tail = Promise.all([before, mine]).then(() => {});
    try {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
      const onTime = await Promise.race([before.then(() => true), late]);
      clearTimeout(timer);
      if (!onTime) {
        throw failure(
          'locked',
          `the kvmnet state is busy with this process's other operations for ${Math.round(timeoutMs / 1000)} s`,
          { hint: 'wait for them to finish, then try again' },
        );
      }
      return await fn();
    } finally {
      done();
    }
  }
}
