// Small file helpers: atomic write (write, fsync, rename) and tolerant reads/removals.
import { access, mkdir, open, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
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
