// The network definition: the stored, validated shape of one kvmnet network, its defaults, and
// every rule a definition must satisfy on its own or beside the others. Pure: no I/O. What the
// host already uses is passed in as data (HostUsage) by the caller.
import { z } from 'zod';
import { inputError } from './errors.js';
import {
  broadcastOf,
  contains,
  formatCidr,
  formatIpv4,
  hasHostBits,
  networkOf,
  overlaps,
  parseCidr,
  parseIpv4,
  type Cidr,
} from './ipv4.js';
import { derivedMac, isMulticastMac, normalizeMac } from './mac.js';

export const NETWORK_MODES = ['nat', 'isolated', 'routed', 'bridge'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

export interface DhcpRange {
  start: string;
  end: string;
}

/** A stored network definition after validation and defaults. */
export interface NetworkDef {
  name: string;
  mode: NetworkMode;
  bridge: string;
  /** The bridge's own MAC, fixed so guests' ARP caches survive a stop/start. */
  mac: string;
  /** The subnet kvmnet owns (nat, isolated, routed); absent on a bridged network, whose LAN owns it. */
  subnet?: string;
  gateway?: string;
  /** null: no DHCP server (DNS is still served); always null on a bridged network. */
  dhcp: DhcpRange | null;
  domain?: string;
  /** Bridged networks: the host NIC that becomes the bridge's port. */
  uplink?: string;
  autostart: boolean;
}

/** A network that owns a subnet (every mode but bridge). */
export type L3NetworkDef = NetworkDef & { subnet: string; gateway: string };

export function isL3(def: NetworkDef): def is L3NetworkDef {
  return def.subnet !== undefined && def.gateway !== undefined;
}

/** The subnet-owning view of a definition, for code that only runs for such networks. */
export function l3(def: NetworkDef): L3NetworkDef {
  if (!isL3(def)) throw new Error(`network ${def.name} has no subnet (mode ${def.mode})`);
  return def;
}

/** What a user may give; everything but name and subnet has a default. */
export interface NetworkInput {
  name: string;
  mode?: string;
  bridge?: string;
  mac?: string;
  subnet?: string;
  gateway?: string;
  dhcp?: DhcpRange | null;
  domain?: string;
  uplink?: string;
  autostart?: boolean;
}

/** The schema of one network in a YAML file: unknown keys and wrong types are refused. */
export const networkFileSchema = z
  .object({
    mode: z.enum(NETWORK_MODES),
    bridge: z.string().optional(),
    mac: z.string().optional(),
    subnet: z.string().optional(),
    uplink: z.string().optional(),
    gateway: z.string().optional(),
    dhcp: z
      .union([z.object({ start: z.string(), end: z.string() }).strict(), z.literal(false), z.null()])
      .optional(),
    domain: z.string().optional(),
    autostart: z.boolean().optional(),
  })
  .strict();

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const DOMAIN_RE =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function validateName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw inputError(
      'invalid-name',
      `network name "${name}" is not valid`,
      'use 1-32 characters from A-Z a-z 0-9 _ . - starting with a letter or digit',
    );
  }
}

export function validateBridgeName(bridge: string): void {
  if (Buffer.byteLength(bridge) > 15) {
    throw inputError(
      'invalid-bridge',
      `bridge name "${bridge}" is ${Buffer.byteLength(bridge)} bytes long`,
      'Linux interface names are at most 15 bytes; pick a shorter --bridge',
    );
  }
  if (!IFNAME_RE.test(bridge) || bridge === '.' || bridge === '..') {
    throw inputError(
      'invalid-bridge',
      `bridge name "${bridge}" has characters outside [A-Za-z0-9_.-]`,
      'use letters, digits, "_", "." and "-" only, e.g. virbr7',
    );
  }
}

export function parseSubnet(field: string, text: string): Cidr {
  const c = parseCidr(text);
  if (!c)
    throw inputError(
      'invalid-subnet',
      `${field} "${text}" is not an IPv4 CIDR`,
      'write it as a.b.c.d/prefix, e.g. 10.10.0.0/24',
    );
  if (hasHostBits(c)) {
    throw inputError(
      'invalid-subnet',
      `${field} "${text}" has host bits set`,
      `use the network address: ${formatIpv4(networkOf(c))}/${c.prefix}`,
    );
  }
  if (c.prefix < 8 || c.prefix > 30) {
    throw inputError(
      'invalid-subnet',
      `${field} "${text}" has prefix /${c.prefix}`,
      'use a prefix from /8 to /30',
    );
  }
  return c;
}

function parseAddr(field: string, text: string): number {
  const ip = parseIpv4(text);
  if (ip === undefined)
    throw inputError('invalid-address', `${field} "${text}" is not an IPv4 address`, 'write it as a.b.c.d');
  return ip;
}

/**
 * The default DHCP pool: every host address after the gateway (libvirt's .2-.254 for a /24), or
 * every host address before it when the gateway is the last host.
 */
export function defaultDhcp(subnet: Cidr, gateway: number): DhcpRange | null {
  const firstHost = networkOf(subnet) + 1;
  const lastHost = broadcastOf(subnet) - 1;
  if (gateway + 1 <= lastHost) return { start: formatIpv4(gateway + 1), end: formatIpv4(lastHost) };
  if (firstHost <= gateway - 1) return { start: formatIpv4(firstHost), end: formatIpv4(gateway - 1) };
  return null;
}

/** Parses "a.b.c.d-e.f.g.h" as given to --dhcp-range. */
export function parseDhcpRangeText(text: string): DhcpRange {
  const m = /^([^-\s]+)-([^-\s]+)$/.exec(text.trim());
  if (!m?.[1] || !m[2]) {
    throw inputError(
      'invalid-dhcp-range',
      `dhcp range "${text}" is not FIRST-LAST`,
      'write it as e.g. 10.10.0.100-10.10.0.199',
    );
  }
  return { start: m[1], end: m[2] };
}

/** Everything the host already uses that a subnet must not overlap (kvmnet's own bridges excluded). */
export interface HostUsage {
  /** Addresses and routes as [cidr, where] pairs, e.g. ["192.168.100.239/24", "address on eth1"]. */
  prefixes: Array<{ cidr: string; where: string }>;
  /** Interface names present on the host that kvmnet does not own. */
  links: string[];
  /** Every interface name on the host (uplinks are someone else's by nature). */
  allLinks?: string[];
}

export interface ValidateContext {
  /** The other stored networks (not including the one being validated). */
  others: NetworkDef[];
  host?: HostUsage;
}

/** Validates user input and fills defaults. Throws a KvmnetError naming the field on the first problem. */
export function buildNetwork(input: NetworkInput, ctx: ValidateContext): NetworkDef {
  validateName(input.name);
  const mode = input.mode ?? 'nat';
  if (!(NETWORK_MODES as readonly string[]).includes(mode)) {
    throw inputError(
      'invalid-mode',
      `mode "${mode}" is not known`,
      `use one of: ${NETWORK_MODES.join(', ')}`,
    );
  }
  if (mode === 'bridge') return buildBridged(input, ctx);
  if (input.uplink !== undefined) {
    throw inputError(
      'invalid-option',
      `--uplink is for bridged networks, not ${mode}`,
      'use --mode bridge --uplink NIC, or drop --uplink',
    );
  }
  if (input.subnet === undefined) {
    throw inputError(
      'missing-subnet',
      `network "${input.name}" needs a subnet`,
      'add --subnet a.b.c.d/prefix, e.g. 10.10.0.0/24',
    );
  }
  const subnet = parseSubnet('subnet', input.subnet);
  const gwNum = input.gateway === undefined ? networkOf(subnet) + 1 : parseAddr('gateway', input.gateway);
  if (!contains(subnet, gwNum) || gwNum === networkOf(subnet) || gwNum === broadcastOf(subnet)) {
    throw inputError(
      'invalid-gateway',
      `gateway ${formatIpv4(gwNum)} is not a host address of subnet ${formatCidr(subnet)}`,
      'pick an address inside the subnet other than its network and broadcast address',
    );
  }
  let dhcp: DhcpRange | null;
  if (input.dhcp === undefined) dhcp = defaultDhcp(subnet, gwNum);
  else if (input.dhcp === null) dhcp = null;
  else dhcp = checkDhcp(input.dhcp, subnet, gwNum);

  const bridge = input.bridge ?? '';
  if (bridge === '')
    throw inputError('missing-bridge', `network "${input.name}" has no bridge name`, 'pass --bridge NAME');
  validateBridgeName(bridge);

  let mac = derivedMac(`kvmnet:${input.name}`);
  if (input.mac !== undefined) {
    const m = normalizeMac(input.mac);
    if (!m || isMulticastMac(m)) {
      throw inputError(
        'invalid-mac',
        `mac "${input.mac}" is not a unicast MAC address`,
        'write it as 52:54:00:xx:xx:xx',
      );
    }
    mac = m;
  }
  if (input.domain !== undefined && !DOMAIN_RE.test(input.domain)) {
    throw inputError(
      'invalid-domain',
      `domain "${input.domain}" is not a DNS name`,
      'use lower-case labels of a-z 0-9 and "-", separated by dots, e.g. lab or lab.example',
    );
  }
  const def: L3NetworkDef = {
    name: input.name,
    mode: mode as NetworkMode,
    bridge,
    mac,
    subnet: formatCidr(subnet),
    gateway: formatIpv4(gwNum),
    dhcp,
    ...(input.domain === undefined ? {} : { domain: input.domain }),
    autostart: input.autostart ?? false,
  };
  checkAgainstOthers(def, subnet, ctx);
  return def;
}

function checkDhcp(range: DhcpRange, subnet: Cidr, gw: number): DhcpRange {
  const start = parseAddr('dhcp range start', range.start);
  const end = parseAddr('dhcp range end', range.end);
  const sub = formatCidr(subnet);
  const text = `${range.start}-${range.end}`;
  for (const [what, ip] of [
    ['start', start],
    ['end', end],
  ] as const) {
    if (!contains(subnet, ip)) {
      throw inputError(
        'invalid-dhcp-range',
        `dhcp range ${text}: ${what} ${formatIpv4(ip)} is outside subnet ${sub}`,
        'keep the range inside the subnet',
      );
    }
    if (ip === networkOf(subnet) || ip === broadcastOf(subnet)) {
      throw inputError(
        'invalid-dhcp-range',
        `dhcp range ${text}: ${what} ${formatIpv4(ip)} is the ${ip === networkOf(subnet) ? 'network' : 'broadcast'} address of ${sub}`,
        'use host addresses only',
      );
    }
  }
  if (start > end) {
    throw inputError(
      'invalid-dhcp-range',
      `dhcp range ${text} is reversed`,
      `write it as ${range.end}-${range.start}`,
    );
  }
  if (gw >= start && gw <= end) {
    throw inputError(
      'invalid-dhcp-range',
      `dhcp range ${text} contains the gateway ${formatIpv4(gw)}`,
      'start the range after the gateway, or end it before',
    );
  }
  return { start: formatIpv4(start), end: formatIpv4(end) };
}

/**
 * A bridged network: the bridge takes over a host NIC (its MAC, addresses and routes); the LAN owns
 * the addressing, so subnet, gateway, DHCP and domain are refused.
 */
function buildBridged(input: NetworkInput, ctx: ValidateContext): NetworkDef {
  for (const [given, flag] of [
    [input.subnet, '--subnet'],
    [input.gateway, '--gateway'],
    [input.dhcp, '--dhcp-range/--no-dhcp'],
    [input.domain, '--domain'],
    [input.mac, '--mac'],
  ] as const) {
    if (given !== undefined) {
      throw inputError(
        'invalid-option',
        `${flag} does not apply to bridged network "${input.name}"`,
        flag === '--mac'
          ? "the bridge takes its uplink's MAC, so the LAN's DHCP server keeps the host's address"
          : "the LAN owns a bridged network's addressing (its router and DHCP server); drop the option",
      );
    }
  }
  if (input.uplink === undefined) {
    throw inputError(
      'missing-uplink',
      `bridged network "${input.name}" needs an uplink`,
      'add --uplink NIC, e.g. --uplink eth1',
    );
  }
  if (!IFNAME_RE.test(input.uplink))
    throw inputError(
      'invalid-uplink',
      `uplink "${input.uplink}" is not an interface name`,
      'e.g. --uplink eth1',
    );
  const bridge = input.bridge ?? '';
  if (bridge === '')
    throw inputError('missing-bridge', `network "${input.name}" has no bridge name`, 'pass --bridge NAME');
  validateBridgeName(bridge);
  const def: NetworkDef = {
    name: input.name,
    mode: 'bridge',
    bridge,
    mac: '', // the uplink's, read when the network starts
    dhcp: null,
    uplink: input.uplink,
    autostart: input.autostart ?? false,
  };
  for (const o of ctx.others) {
    if (o.name === def.name) continue;
    if (o.bridge === def.bridge)
      throw inputError(
        'bridge-taken',
        `bridge ${def.bridge} is already used by network "${o.name}"`,
        'pick another --bridge',
      );
    if (o.uplink === def.uplink)
      throw inputError(
        'uplink-taken',
        `uplink ${input.uplink} is already the uplink of network "${o.name}"`,
        'a NIC can be the port of one bridge only',
      );
  }
  if (ctx.host) {
    if (ctx.host.links.includes(bridge)) {
      throw inputError(
        'bridge-taken',
        `interface ${bridge} already exists on this host`,
        'pick another --bridge or remove that interface',
      );
    }
    if (!ctx.host.allLinks?.includes(input.uplink)) {
      throw inputError(
        'uplink-missing',
        `uplink ${input.uplink} does not exist on this host`,
        'name an existing NIC; see `ip link`',
      );
    }
  }
  return def;
}

function checkAgainstOthers(def: L3NetworkDef, subnet: Cidr, ctx: ValidateContext): void {
  for (const o of ctx.others) {
    if (o.name === def.name) continue;
    const oc = o.subnet === undefined ? undefined : parseCidr(o.subnet);
    if (oc && overlaps(subnet, oc)) {
      throw inputError(
        'subnet-overlap',
        `subnet ${def.subnet} of "${def.name}" overlaps "${o.name}" (${o.subnet})`,
        'pick a subnet no other network uses, e.g. with `kvmnet net list` to see them',
      );
    }
    if (o.bridge === def.bridge) {
      throw inputError(
        'bridge-taken',
        `bridge ${def.bridge} is already used by network "${o.name}"`,
        'pick another --bridge',
      );
    }
  }
  if (!ctx.host) return;
  for (const p of ctx.host.prefixes) {
    const pc = parseCidr(p.cidr);
    if (pc && pc.prefix > 0 && overlaps(subnet, pc)) {
      throw inputError(
        'subnet-overlap',
        `subnet ${def.subnet} of "${def.name}" overlaps ${p.cidr} (${p.where}) on this host`,
        'pick a subnet the host does not use yet',
      );
    }
  }
  if (ctx.host.links.includes(def.bridge)) {
    throw inputError(
      'bridge-taken',
      `interface ${def.bridge} already exists on this host`,
      'pick another --bridge or remove that interface',
    );
  }
}

/** Lowest free virbrN not used by another network or an existing interface. */
export function pickBridgeName(used: Set<string>): string {
  for (let n = 0; ; n++) {
    const name = `virbr${n}`;
    if (!used.has(name)) return name;
  }
}

/** Stable field-by-field comparison for plans ("dhcp.start 10.0.0.2 -> 10.0.0.100"). */
export function diffNetworks(a: NetworkDef, b: NetworkDef): string[] {
  const flat = (d: NetworkDef): Record<string, string> => ({
    mode: d.mode,
    bridge: d.bridge,
    mac: d.mac,
    subnet: d.subnet ?? '(none)',
    gateway: d.gateway ?? '(none)',
    uplink: d.uplink ?? '(none)',
    'dhcp.start': d.dhcp?.start ?? '(none)',
    'dhcp.end': d.dhcp?.end ?? '(none)',
    domain: d.domain ?? '(none)',
    autostart: String(d.autostart),
  });
  const fa = flat(a);
  const fb = flat(b);
  return Object.keys(fa)
    .filter((k) => fa[k] !== fb[k])
    .map((k) => `${k} ${fa[k]} -> ${fb[k]}`);
}
