// Reads dnsmasq's lease file: one line per lease, "EXPIRY MAC IP HOSTNAME CLIENTID" (EXPIRY 0 means
// infinite, "*" means none).
import { parseIpv4 } from '../model/ipv4.js';
import { normalizeMac } from '../model/mac.js';
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
    if (f.length < 4 || !/^\d{1,12}$/.test(f[0] ?? '')) continue; // 12 digits: year 33658, still a valid Date
    const mac = normalizeMac(f[1] ?? '');
    if (!mac || parseIpv4(f[2] ?? '') === undefined) continue; // not an IPv4 lease line
    const exp = Number(f[0]);
    out.push({
      mac,
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
