// The state lock: one kvmnet process changes state at a time (CLI, daemon, hooks alike).
// An O_EXCL lock file holding the owner's pid; a lock whose owner is dead is taken over.
import { mkdir, open, readFile, rmdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { failure } from '../model/errors.js';

export interface Lock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquireLock(
  path: string,
  opts: { timeoutMs?: number; note?: (s: string) => void } = {},
): Promise<Lock> {
  // A dry run on a fresh host must leave nothing behind: a directory made only for the lock goes
  // again on release if nothing else was written into it.
  const made = await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let noted = false;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
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
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let owner: number;
    try {
      owner = Number((await readFile(path, 'utf8')).trim());
    } catch {
      continue; // released meanwhile
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      // Stale lock of a crashed process: remove it only if it still names that process.
      try {
        if (Number((await readFile(path, 'utf8')).trim()) === owner) await unlink(path);
      } catch {
        /* raced with another taker */
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw failure('locked', `the kvmnet state is locked by process ${owner}`, {
        hint: `wait for it to finish, or check ${path}`,
      });
    }
    if (!noted) {
      opts.note?.(`waiting for the kvmnet lock held by process ${owner}`);
      noted = true;
    }
    await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
  }
}
