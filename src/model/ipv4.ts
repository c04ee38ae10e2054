// IPv4 addresses and prefixes as plain numbers: parsing, formatting, containment and overlap.
// Strict parsing: four decimal octets without leading zeros, prefix 0-32.

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits may be set for interface addresses). */
  readonly addr: number;
  readonly prefix: number;
}

/** Strict: four decimal octets 0-255 without leading zeros (hot path: no regular expressions). */
export function parseIpv4(text: string): number | undefined {
  let n = 0;
  let octet = -1;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a final "."
    if (c === 46) {
      if (digits === 0 || octet > 255) return undefined;
      n = n * 256 + octet;
      parts++;
      octet = -1;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined; // leading zero
      octet = (octet < 0 ? 0 : octet) * 10 + (c - 48);
      if (++digits > 3) return undefined;
    } else return undefined;
  }
  return parts === 4 ? n : undefined;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/p". Returns undefined when malformed; host bits are kept as written. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (!m) return undefined;
  const addr = parseIpv4(m[1] ?? '');
  const prefix = Number(m[2]);
  if (addr === undefined || prefix > 32 || String(prefix) !== m[2]) return undefined;
  return { addr, prefix };
}

export function networkOf(c: Cidr): number {
  return (c.addr & maskOf(c.prefix)) >>> 0;
}

export function broadcastOf(c: Cidr): number {
  return (networkOf(c) | (~maskOf(c.prefix) >>> 0)) >>> 0;
}

export function hasHostBits(c: Cidr): boolean {
  return networkOf(c) !== c.addr;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.addr)}/${c.prefix}`;
}

export function contains(c: Cidr, ip: number): boolean {
  return (ip & maskOf(c.prefix)) >>> 0 === networkOf(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = maskOf(p);
  return (a.addr & m) >>> 0 === (b.addr & m) >>> 0;
}

/** Number of usable host addresses (excluding network and broadcast for prefixes up to /30). */
export function hostCount(c: Cidr): number {
  const size = 2 ** (32 - c.prefix);
  return c.prefix >= 31 ? size : size - 2;
}

export function netmaskText(prefix: number): string {
  return formatIpv4(maskOf(prefix));
}
