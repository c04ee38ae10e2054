// MAC addresses: parsing to canonical lower-case colon form, and the stable per-network bridge MAC.
import { createHash } from 'node:crypto';

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function normalizeMac(text: string): string | undefined {
  const t = text.trim().toLowerCase().replace(/-/g, ':');
  return MAC_RE.test(t) ? t : undefined;
}

export function isMulticastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 1;
}

/** A locally stable MAC in QEMU/KVM's 52:54:00 prefix, derived from a seed (e.g. the network name). */
export function derivedMac(seed: string): string {
  const h = createHash('sha256').update(seed).digest();
  const b = [h[0] ?? 0, h[1] ?? 0, h[2] ?? 0].map((x) => x.toString(16).padStart(2, '0'));
  return `52:54:00:${b.join(':')}`;
}
