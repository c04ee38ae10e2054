// The network definition: the stored, validated shape of one kvmnet network, its defaults, and
// every rule a definition must satisfy on its own or beside the others. Pure: no I/O. What the
// host already uses is passed in as data (HostUsage) by the caller.
import { fieldError, inputError } from './errors.js';
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

export const NETWORK_MODES = ['nat', 'isolated', 'routed', 'bridge', 'open'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

export interface DhcpRange {
  start: string;
  end: string;
}

/** A static DHCP host (libvirt's `<dhcp><host>`): a MAC and/or a name bound to an address. */
export interface DhcpHost {
  mac?: string;
  name?: string;
  ip: string;
  /** Lease time in seconds for this host; 0: infinite. Absent: the network's. */
  leaseTime?: number;
}

/** A DNS record of the network's dnsmasq: an address and the names it answers to. */
export interface DnsHost {
  ip: string;
  hostnames: string[];
}

/** Upstream DNS: `addr` for every name (or only `domain`), or `domain` answered locally only. */
export interface DnsForwarder {
  addr?: string;
  domain?: string;
}

export interface DnsSrv {
  service: string;
  protocol: 'tcp' | 'udp';
  domain?: string;
  target?: string;
  port?: number;
  priority?: number;
  weight?: number;
}

export interface DnsTxt {
  name: string;
  value: string;
}

/** The DNS side of a network's dnsmasq beyond the guests' names. Every key optional; absent: default. */
export interface DnsConfig {
  /** false: no DNS server on the network (dnsmasq port=0); DHCP still runs. */
  enable?: boolean;
  /**
   * true: plain names (no dot) not known locally are forwarded upstream (no domain-needed);
   * false: they are answered locally only (domain-needed and local=//); absent: kvmnet's
   * default, domain-needed.
   */
  forwardPlainNames?: boolean;
  hosts?: DnsHost[];
  forwarders?: DnsForwarder[];
  srv?: DnsSrv[];
  txt?: DnsTxt[];
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
  /** A libvirt UUID kept from an imported XML definition (and written back by dumpxml). */
  uuid?: string;
  /** The bridge's MTU (absent: the kernel's default, 1500). */
  mtu?: number;
  /** Spanning tree on the bridge (absent: off, as a VM switch wants it). */
  stp?: boolean;
  /** Bridge forward delay in seconds (absent: 0). */
  forwardDelay?: number;
  /** DHCP lease time in seconds; 0: infinite (absent: dnsmasq's default, 1 h). */
  leaseTime?: number;
  /** Static DHCP hosts besides the ports' reservations. */
  dhcpHosts?: DhcpHost[];
  dns?: DnsConfig;
  /**
   * nat and routed networks: the one host interface their traffic may leave (and replies enter)
   * through (libvirt's `<forward dev>`); absent: any interface.
   */
  forwardDev?: string;
  /**
   * routed networks: other routed networks whose guests may reach this one's and back (isolation
   * between kvmnet networks is otherwise total). One side naming the other suffices.
   */
  peers?: string[];
  /**
   * nat networks: false turns off flow offload (established TCP/UDP flows bypass the forward path
   * through an nftables flowtable). Stored only when false; absent: on (where the kernel has
   * flowtables).
   */
  offload?: false;
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
  uuid?: string;
  mtu?: number;
  stp?: boolean;
  forwardDelay?: number;
  leaseTime?: number;
  dhcpHosts?: DhcpHost[];
  dns?: DnsConfig;
  forwardDev?: string;
  peers?: string[];
  offload?: boolean;
}

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
  if (bridge.startsWith('-')) {
    throw inputError(
      'invalid-bridge',
      `bridge name "${bridge}" starts with "-"`,
      'a name that looks like an option is refused; start it with a letter or digit, e.g. virbr7',
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
    ...checkExtras(input, subnet, gwNum, dhcp),
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
    [input.mtu, 'mtu'],
    [input.stp, 'stp'],
    [input.forwardDelay, 'forwardDelay'],
    [input.leaseTime, 'leaseTime'],
    [input.dhcpHosts, 'dhcpHosts'],
    [input.dns, 'dns'],
    [input.forwardDev, 'forwardDev'],
    [input.peers, 'peers'],
    [input.offload === false ? false : undefined, 'offload'],
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
  if (input.uplink === undefined) return buildHostBridge(input, ctx);
  if (
    !IFNAME_RE.test(input.uplink) ||
    input.uplink === '.' ||
    input.uplink === '..' ||
    input.uplink.startsWith('-')
  )
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
    ...(input.uuid === undefined ? {} : { uuid: checkUuid(input.uuid) }),
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

/**
 * A bridged network without an uplink joins a bridge the host already has (libvirt's
 * `<forward mode='bridge'/><bridge name='br0'/>`): kvmnet never creates, changes or deletes that
 * bridge; it only plugs its ports into it.
 */
function buildHostBridge(input: NetworkInput, ctx: ValidateContext): NetworkDef {
  const bridge = input.bridge ?? '';
  const exists = bridge !== '' && (ctx.host === undefined || ctx.host.allLinks?.includes(bridge) === true);
  if (!exists) {
    throw inputError(
      'missing-uplink',
      `bridged network "${input.name}" needs an uplink${bridge ? `, or ${bridge} must be an existing host bridge` : ''}`,
      'add --uplink NIC (kvmnet creates the bridge), or --bridge NAME of a bridge the host already has',
    );
  }
  validateBridgeName(bridge);
  for (const o of ctx.others) {
    if (o.name !== input.name && o.bridge === bridge) {
      throw inputError(
        'bridge-taken',
        `bridge ${bridge} is already used by network "${o.name}"`,
        'one kvmnet network per bridge',
      );
    }
  }
  return {
    name: input.name,
    mode: 'bridge',
    bridge,
    mac: '',
    dhcp: null,
    autostart: input.autostart ?? false,
    ...(input.uuid === undefined ? {} : { uuid: checkUuid(input.uuid) }),
  };
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
    uuid: d.uuid ?? '(none)',
    mtu: d.mtu === undefined ? '(default)' : String(d.mtu),
    stp: d.stp ? 'on' : 'off',
    forwardDelay: String(d.forwardDelay ?? 0),
    leaseTime: d.leaseTime === undefined ? '(default)' : String(d.leaseTime),
    dhcpHosts: d.dhcpHosts?.length ? JSON.stringify(d.dhcpHosts) : '(none)',
    dns: d.dns === undefined ? '(default)' : JSON.stringify(d.dns),
    forwardDev: d.forwardDev ?? '(any)',
    peers: d.peers?.length ? d.peers.join(',') : '(none)',
    offload: d.offload === false ? 'off' : 'on',
  });
  const fa = flat(a);
  const fb = flat(b);
  return Object.keys(fa)
    .filter((k) => fa[k] !== fb[k])
    .map((k) => `${k} ${fa[k]} -> ${fb[k]}`);
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
/** Host names in DNS records and DHCP hosts: dot-separated labels, upper case allowed. */
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
/** SRV service/protocol labels and TXT names: what dnsmasq takes in srv-host=/txt-record=. */
const LABEL_RE = /^[A-Za-z0-9_-]{1,63}$/;

/** The canonical form of a UUID: lower case, with dashes. */
export function checkUuid(text: string): string {
  if (!UUID_RE.test(text)) {
    throw fieldError(
      'uuid',
      'invalid-uuid',
      `uuid "${text}" is not a UUID`,
      'write it as 8-4-4-4-12 hex digits',
    );
  }
  const h = text.replace(/-/g, '').toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function checkInt(field: string, v: number, min: number, max: number, hint: string): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw fieldError(
      field,
      `invalid-${field.split('.')[0]?.toLowerCase() ?? 'value'}`,
      `${field} ${v} is out of range ${min}-${max}`,
      hint,
    );
  }
  return v;
}

function checkHostname(field: string, name: string): string {
  if (!HOSTNAME_RE.test(name)) {
    throw fieldError(
      field,
      'invalid-hostname',
      `${field} "${name}" is not a host name`,
      'use dot-separated labels of letters, digits, "-" and "_", e.g. web or web.lab',
    );
  }
  return name;
}

/** An address of the subnet that a guest may hold: inside, not the network or broadcast address. */
function checkHostAddr(field: string, text: string, subnet: Cidr): number {
  const ip = parseIpv4(text);
  if (ip === undefined)
    throw fieldError(
      field,
      'invalid-address',
      `${field} "${text}" is not an IPv4 address`,
      'write it as a.b.c.d',
    );
  if (!contains(subnet, ip) || ip === networkOf(subnet) || ip === broadcastOf(subnet)) {
    throw fieldError(
      field,
      'invalid-address',
      `${field} ${text} is not a host address of subnet ${formatCidr(subnet)}`,
      'pick an address inside the subnet other than its network and broadcast address',
    );
  }
  return ip;
}

const LEASE_MAX = 0xffffffff;

/** Validates and canonicalizes the optional fields of a subnet-owning network. */
function checkExtras(
  input: NetworkInput,
  subnet: Cidr,
  gw: number,
  dhcp: DhcpRange | null,
): Partial<NetworkDef> {
  const out: Partial<NetworkDef> = {};
  if (input.uuid !== undefined) out.uuid = checkUuid(input.uuid);
  if (input.mtu !== undefined) out.mtu = checkInt('mtu', input.mtu, 68, 65535, 'an MTU is 68-65535 bytes');
  if (input.stp === true) out.stp = true;
  if (input.forwardDelay !== undefined && input.forwardDelay !== 0) {
    out.forwardDelay = checkInt(
      'forwardDelay',
      input.forwardDelay,
      0,
      30,
      'a bridge forward delay is 0-30 seconds',
    );
  }
  if (input.leaseTime !== undefined) {
    out.leaseTime = checkInt('leaseTime', input.leaseTime, 0, LEASE_MAX, 'seconds; 0 for infinite');
    if (!dhcp)
      throw fieldError(
        'leaseTime',
        'invalid-option',
        'leaseTime needs DHCP on the network',
        'drop leaseTime or give the network a DHCP range',
      );
  }
  if (input.dhcpHosts !== undefined && input.dhcpHosts.length > 0) {
    if (!dhcp) {
      throw fieldError(
        'dhcpHosts',
        'no-dhcp',
        'static DHCP hosts need DHCP on the network',
        'give the network a DHCP range, or drop dhcpHosts',
      );
    }
    const ips = new Map<number, number>();
    const macs = new Map<string, number>();
    const names = new Map<string, number>();
    out.dhcpHosts = input.dhcpHosts.map((h, i) => {
      const f = `dhcpHosts.${i}`;
      const ip = checkHostAddr(`${f}.ip`, h.ip, subnet);
      if (ip === gw)
        throw fieldError(
          `${f}.ip`,
          'invalid-address',
          `${f}.ip ${h.ip} is the gateway`,
          'pick another host address',
        );
      const twin = ips.get(ip);
      if (twin !== undefined)
        throw fieldError(
          `${f}.ip`,
          'ip-taken',
          `${f}.ip ${h.ip} is also dhcpHosts.${twin}.ip`,
          'give each host its own address',
        );
      ips.set(ip, i);
      const host: DhcpHost = { ip: formatIpv4(ip) };
      if (h.mac === undefined && h.name === undefined) {
        throw fieldError(
          f,
          'invalid-dhcp-host',
          `${f} has neither a mac nor a name`,
          'give the host a mac, a name or both',
        );
      }
      if (h.mac !== undefined) {
        const m = normalizeMac(h.mac);
        if (!m || isMulticastMac(m))
          throw fieldError(
            `${f}.mac`,
            'invalid-mac',
            `${f}.mac "${h.mac}" is not a unicast MAC address`,
            'write it as 52:54:00:xx:xx:xx',
          );
        const t = macs.get(m);
        if (t !== undefined)
          throw fieldError(
            `${f}.mac`,
            'mac-taken',
            `${f}.mac ${m} is also dhcpHosts.${t}.mac`,
            'one host per MAC',
          );
        macs.set(m, i);
        host.mac = m;
      }
      if (h.name !== undefined) {
        checkHostname(`${f}.name`, h.name);
        const t = names.get(h.name.toLowerCase());
        if (t !== undefined)
          throw fieldError(
            `${f}.name`,
            'name-taken',
            `${f}.name ${h.name} is also dhcpHosts.${t}.name`,
            'one host per name',
          );
        names.set(h.name.toLowerCase(), i);
        host.name = h.name;
      }
      if (h.leaseTime !== undefined)
        host.leaseTime = checkInt(`${f}.leaseTime`, h.leaseTime, 0, LEASE_MAX, 'seconds; 0 for infinite');
      return host;
    });
  }
  if (input.dns !== undefined) {
    const d = checkDns(input.dns, subnet);
    if (Object.keys(d).length > 0) out.dns = d;
  }
  if (input.forwardDev !== undefined) {
    if (input.mode !== 'nat' && input.mode !== 'routed' && input.mode !== undefined)
      throw fieldError(
        'forwardDev',
        'invalid-option',
        `forwardDev is for nat and routed networks, not ${input.mode}`,
        'drop forwardDev',
      );
    if (
      !IFNAME_RE.test(input.forwardDev) ||
      input.forwardDev === '.' ||
      input.forwardDev === '..' ||
      input.forwardDev.startsWith('-')
    )
      throw fieldError(
        'forwardDev',
        'invalid-forward-dev',
        `forwardDev "${input.forwardDev}" is not an interface name`,
        'name a host interface, e.g. eth1',
      );
    out.forwardDev = input.forwardDev;
  }
  if (input.offload === false) {
    if (input.mode !== 'nat' && input.mode !== undefined)
      throw fieldError(
        'offload',
        'invalid-option',
        `offload is for nat networks, not ${input.mode}`,
        'drop offload (--no-offload)',
      );
    out.offload = false;
  }
  if (input.peers !== undefined && input.peers.length > 0) {
    if (input.mode !== 'routed')
      throw fieldError(
        'peers',
        'invalid-option',
        `peers are for routed networks, not ${input.mode ?? 'nat'}`,
        'guests of two networks reach each other only when both are routed; drop --peer',
      );
    const peers: string[] = [];
    for (const p of input.peers) {
      if (!NAME_RE.test(p))
        throw fieldError(
          'peers',
          'invalid-peer',
          `peer "${p}" is not a network name`,
          'name a routed network',
        );
      if (p === input.name)
        throw fieldError(
          'peers',
          'invalid-peer',
          `network "${p}" cannot be its own peer`,
          'drop it from peers',
        );
      if (!peers.includes(p)) peers.push(p);
    }
    out.peers = peers.sort();
  }
  return out;
}

/**
 * Peers across all definitions: each names a defined routed network. Checked on the whole set (a
 * definitions file may name a peer defined further down), and again when a peer changes mode.
 */
export function checkPeers(defs: NetworkDef[]): void {
  const byName = new Map(defs.map((d) => [d.name, d]));
  for (const d of defs) {
    for (const p of d.peers ?? []) {
      const o = byName.get(p);
      if (!o)
        throw fieldError(
          'peers',
          'unknown-peer',
          `peer "${p}" of network "${d.name}" is not defined`,
          'define the routed network first, or drop it from peers',
        );
      if (o.mode !== 'routed')
        throw fieldError(
          'peers',
          'invalid-peer',
          `peer "${p}" of network "${d.name}" is ${o.mode}, not routed`,
          'only routed networks can be peered; drop it from peers',
        );
    }
  }
}

/**
 * The bridges of the routed networks `def` renders peer pairs with: the peers it names, and those
 * naming it, but a pair named by both is rendered by the network with the lower name only.
 * Peers that are no longer defined or no longer routed are left out.
 */
export function peerBridgesOf(def: NetworkDef, all: NetworkDef[]): string[] {
  if (def.mode !== 'routed') return [];
  const out: string[] = [];
  for (const p of def.peers ?? []) {
    const o = all.find((x) => x.name === p);
    if (!o || o.mode !== 'routed' || o.name === def.name) continue;
    if ((o.peers ?? []).includes(def.name) && o.name < def.name) continue;
    out.push(o.bridge);
  }
  return out.sort();
}

function checkDns(dns: DnsConfig, _subnet: Cidr): DnsConfig {
  const out: DnsConfig = {};
  if (dns.enable === false) {
    if (
      dns.hosts?.length ||
      dns.srv?.length ||
      dns.txt?.length ||
      dns.forwarders?.length ||
      dns.forwardPlainNames !== undefined
    ) {
      throw fieldError(
        'dns.enable',
        'invalid-dns',
        'dns.enable is false but the network has DNS records or options',
        'drop the DNS records, or enable DNS',
      );
    }
    out.enable = false;
  }
  if (dns.forwardPlainNames !== undefined) out.forwardPlainNames = dns.forwardPlainNames;
  if (dns.hosts?.length) {
    out.hosts = dns.hosts.map((h, i) => {
      const f = `dns.hosts.${i}`;
      const ip = parseIpv4(h.ip);
      if (ip === undefined)
        throw fieldError(
          `${f}.ip`,
          'invalid-address',
          `${f}.ip "${h.ip}" is not an IPv4 address`,
          'write it as a.b.c.d',
        );
      if (h.hostnames.length === 0)
        throw fieldError(
          `${f}.hostnames`,
          'invalid-dns',
          `${f} has no hostnames`,
          'give the address at least one name',
        );
      h.hostnames.forEach((n, j) => checkHostname(`${f}.hostnames.${j}`, n));
      return { ip: formatIpv4(ip), hostnames: [...h.hostnames] };
    });
  }
  if (dns.forwarders?.length) {
    out.forwarders = dns.forwarders.map((fw, i) => {
      const f = `dns.forwarders.${i}`;
      const r: DnsForwarder = {};
      if (fw.addr === undefined && fw.domain === undefined)
        throw fieldError(
          f,
          'invalid-dns',
          `${f} has neither addr nor domain`,
          'give an upstream address, a domain or both',
        );
      if (fw.domain !== undefined) r.domain = checkHostname(`${f}.domain`, fw.domain);
      if (fw.addr !== undefined) {
        const ip = parseIpv4(fw.addr);
        if (ip === undefined)
          throw fieldError(
            `${f}.addr`,
            'invalid-address',
            `${f}.addr "${fw.addr}" is not an IPv4 address`,
            'write it as a.b.c.d',
          );
        r.addr = formatIpv4(ip);
      }
      return r;
    });
  }
  if (dns.srv?.length) {
    out.srv = dns.srv.map((s, i) => {
      const f = `dns.srv.${i}`;
      if (!LABEL_RE.test(s.service))
        throw fieldError(
          `${f}.service`,
          'invalid-dns',
          `${f}.service "${s.service}" is not a service name`,
          'e.g. ldap or http',
        );
      if (s.protocol !== 'tcp' && s.protocol !== 'udp')
        throw fieldError(
          `${f}.protocol`,
          'invalid-dns',
          `${f}.protocol "${String(s.protocol)}" is not tcp or udp`,
          'use tcp or udp',
        );
      const r: DnsSrv = { service: s.service, protocol: s.protocol };
      if (s.domain !== undefined) r.domain = checkHostname(`${f}.domain`, s.domain);
      if (s.target !== undefined) r.target = s.target === '.' ? '.' : checkHostname(`${f}.target`, s.target);
      if (s.port !== undefined) r.port = checkInt(`${f}.port`, s.port, 1, 65535, 'a port is 1-65535');
      if (s.priority !== undefined) r.priority = checkInt(`${f}.priority`, s.priority, 0, 65535, '0-65535');
      if (s.weight !== undefined) r.weight = checkInt(`${f}.weight`, s.weight, 0, 65535, '0-65535');
      if (
        r.target === undefined &&
        (r.port !== undefined || r.priority !== undefined || r.weight !== undefined)
      )
        throw fieldError(
          `${f}.target`,
          'invalid-dns',
          `${f} has a port, priority or weight but no target`,
          'add a target host',
        );
      return r;
    });
  }
  if (dns.txt?.length) {
    out.txt = dns.txt.map((t, i) => {
      const f = `dns.txt.${i}`;
      if (!HOSTNAME_RE.test(t.name))
        throw fieldError(
          `${f}.name`,
          'invalid-dns',
          `${f}.name "${t.name}" is not a DNS name`,
          'e.g. example or info.lab',
        );
      // dnsmasq's txt-record= splits on commas, ends at a newline and takes " #" as a comment; a
      // TXT character-string is at most 255 bytes.
      if (!/^[\x20-\x7e]*$/.test(t.value) || /[,"\\#]/.test(t.value))
        throw fieldError(
          `${f}.value`,
          'invalid-dns',
          `${f}.value has a comma, quote, backslash, "#", line break or other character outside printable ASCII`,
          'dnsmasq cannot take those in a TXT record value',
        );
      if (t.value.length > 255)
        throw fieldError(
          `${f}.value`,
          'invalid-dns',
          `${f}.value is ${t.value.length} characters long`,
          'a TXT record value is at most 255 characters',
        );
      return { name: t.name, value: t.value };
    });
  }
  return out;
}
