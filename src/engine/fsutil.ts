// Small file helpers: atomic write (write, fsync, rename) and tolerant reads/removals.
import { access, mkdir, open, readdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

/**
 * `mkdir -p`: makes `dir` and its missing parents, returning the first directory it made (as
 * `mkdir(…, { recursive: true })` does). Node 20's recursive mkdir never returns for a path it
 * cannot make under a file system like /proc (`--state-dir /proc/x/y` hung kvmnet): this one
 * makes the parents one by one and fails with the kernel's error.
 */
export async function makeDirs(dir: string, mode?: number): Promise<string | undefined> {
  const missing: string[] = [];
  for (let d = resolve(dir); ;) {
    try {
      await stat(d);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      missing.push(d);
      const up = dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  let first: string | undefined;
  for (const d of missing.reverse()) {
    try {
      await mkdir(d, mode === undefined ? {} : { mode });
      first ??= d;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return first;
}

/**
 * Writes a file whole or not at all (a temporary file renamed over it). `durable: false` skips the
 * fsync: for files kvmnet regenerates and compares on every start (dnsmasq's), which a power loss
 * may tear but the next start rewrites; a process crash never tears them (the rename is atomic).
 */
export async function writeAtomic(
  path: string,
  content: string,
  mode = 0o644,
  opts: { durable?: boolean } = {},
): Promise<void> {
  await makeDirs(dirname(path), 0o755);
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(content);
    if (opts.durable !== false) await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/**
 * Removes the temporary files writeAtomic left in `dir` when a kvmnet process died half-way
 * through a write (`NAME.tmp-PID` of a process that is gone). kvmnet writes several files side
 * by side, so a crash can leave more than one.
 */
export async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names.map(async (n) => {
      const pid = Number(/\.tmp-(\d+)$/.exec(n)?.[1]);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) return;
      await rm(join(dir, n), { force: true });
    }),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export async function removePath(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** Removes a directory only if it is empty; silently keeps it otherwise. */
export async function removeIfEmpty(path: string): Promise<void> {
  try {
    await rmdir(path);
  } catch {
    /* not empty or gone */
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first existing directory on the way to `path` that other users cannot traverse (no o+x), or
 * null. dnsmasq drops root after start-up and re-reads its hosts files on SIGHUP as that user.
 */
export async function firstUntraversable(path: string): Promise<string | null> {
  const chain: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const dir of chain) {
    try {
      const st = await stat(dir);
      if (st.isDirectory() && (st.mode & 0o001) === 0) return dir;
    } catch {
      return null; // the rest does not exist yet; kvmnet creates it 0755
    }
  }
  return null;
}
