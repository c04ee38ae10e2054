// Reads dnsmasq's lease file: one line per lease, "EXPIRY MAC IP HOSTNAME CLIENTID" (EXPIRY 0 means
// infinite, "*" means none).
import { readOrNull } from './fsutil.js';

export interface Lease {
  mac: string;
  ip: string;
  hostname: string | null;
  /** ISO time, or null for an infinite lease. */
  expiry: string | null;
}

export function parseLeases(text: string): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+$/.test(f[0] ?? '')) continue;
    const exp = Number(f[0]);
    out.push({
      mac: (f[1] ?? '').toLowerCase(),
      ip: f[2] ?? '',
      hostname: f[3] === '*' ? null : (f[3] ?? null),
      expiry: exp === 0 ? null : new Date(exp * 1000).toISOString(),
    });
  }
  return out;
}

export async function readLeases(path: string): Promise<Lease[]> {
  return parseLeases((await readOrNull(path)) ?? '');
}
