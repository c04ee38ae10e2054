// The API token: 32 random bytes in hex, made on the daemon's first start, kept 0600 in the state
// dir. The session cookie and the CSRF token are derived from it, so they survive a daemon restart
// and die with the token (delete the file and restart to revoke every session).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, open, readFile, stat } from 'node:fs/promises';
import { makeDirs } from '../engine/fsutil.js';
import { dirname } from 'node:path';
import { failure } from '../model/errors.js';

const TOKEN_RE = /^[0-9a-f]{64}$/;

export async function loadOrCreateToken(path: string): Promise<{ token: string; created: boolean }> {
  for (;;) {
    try {
      const text = (await readFile(path, 'utf8')).trim();
      if (!TOKEN_RE.test(text))
        throw failure('bad-token-file', `${path} does not hold a kvmnet token`, {
          hint: 'delete it: kvmnet serve makes a new one (every open session must sign in again)',
        });
      if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
      return { token: text, created: false };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await makeDirs(dirname(path), 0o700);
    const token = randomBytes(32).toString('hex');
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${token}\n`);
      await fh.sync();
      await fh.close();
      return { token, created: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // another daemon made it: read it
    }
  }
}

/** Values handed out for a token: the session cookie's and the CSRF header's. */
export function derive(token: string, what: 'session' | 'csrf'): string {
  return createHmac('sha256', token).update(`kvmnet-${what}`).digest('hex');
}

export function sameSecret(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
