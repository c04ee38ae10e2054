// Renders kvmnet's anti-spoofing table (`table bridge kvmnet`) as `nft -f` text, and the dnsmasq
// lease hook that keeps its lease sets current. Pure. Separate from `table inet kvmnet` (render/nft.ts):
// it filters frames as they enter the bridge from a guest's tap, before any IP hook sees them.
//
// Layout (like libvirt's clean-traffic nwfilter, with the per-port values in sets): a base chain
// at the bridge prerouting hook looks up the ingress port in the verdict map `ports` and jumps to
// the chain of the port's network, `net_<bridge>`. Its rules are the same for every port; what is
// the port's own is an element keyed by the tap: its guest MAC (port_mac), its reservation
// (reserved, port_ip), and its MAC as DHCP client address (chaddr). The chain drops frames whose
// source MAC is not the guest's, ARP whose sender MAC/IP is not the guest's, IPv4 from an address not
// the guest's (once it has a reservation or a lease; DHCP from 0.0.0.0 is always allowed), IPv6
// other than link-local on kvmnet's IPv4 networks, and every other ethertype. On a network kvmnet
// addresses the set prot_<bridge> holds the addresses no guest may claim: the gateway and every
// reservation of the network (its ports' and DHCP hosts'); a port without a reservation is dropped
// claiming them (a port with one drops every source but its own anyway). So the rules do not grow
// with the ports, and a port is a handful of set elements.
// A port without a reservation is pinned by its DHCP lease: the sets lease_ip (MAC . IP) and
// lease_mac (MAC) hold the leases, filled by kvmnet from the lease files whenever it rebuilds the
// table (or adds such a port) and by dnsmasq's dhcp-script (renderLeaseHook) when a lease is added,
// renewed, released or expires. (No nft timeouts: dnsmasq reports expiry itself, and the listing
// stays stable.)
//
// Drift is found object by object: the rules of each chain carry the comment kvmnet#TAG, TAG a hash
// of that chain's rules, and the map and sets are compared element by element. A change is one
// transaction for only what differs: elements added and deleted (a port added or removed), a
// network's chain added, refilled or deleted. The table is rebuilt as a whole (one transaction)
// only when it is missing or its base chain, map or sets are not as rendered.
import { createHash } from 'node:crypto';
import { compareNames, compareNatural } from '../model/order.js';

export const BRIDGE_TABLE = 'bridge kvmnet';

/** A port that kvmnet checks: its tap, guest MAC, and what its network knows about addresses. */
export interface BridgePort {
  tap: string;
  /** The guest's MAC (52:54:00:…), not the tap's (fe:…). */
  mac: string;
  /** The port's reservation: its only IPv4 source. */
  ip?: string;
  /** The bridge of the port's network (it names the network's chain and set). */
  bridge: string;
  /**
   * Present on networks kvmnet addresses (not bridged): the addresses in the network's set
   * prot_<bridge> — the gateway and every reservation of the network, the port's own included —
   * which a guest without a reservation must not claim; IPv6 is then link-local only.
   */
  l3?: { protected: string[] };
}

export interface BridgeLease {
  mac: string;
  ip: string;
}

const TAP_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IP_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Ports whose names and addresses can be written into nft text (everything else is skipped). */
export function checkablePorts(ports: BridgePort[]): BridgePort[] {
  return checkable(ports).sort((a, b) => compareNatural(a.tap, b.tap));
}

/** checkablePorts in the given order (a port delta needs no order: it compares sets). */
function checkable(ports: BridgePort[]): BridgePort[] {
  // A network's ports share one protected list (bridgePorts): each list is checked once.
  const l3Ok = new Map<{ protected: string[] }, boolean>();
  const protectedOk = (l3: { protected: string[] }): boolean => {
    let ok = l3Ok.get(l3);
    if (ok === undefined) l3Ok.set(l3, (ok = l3.protected.every((a) => IP_RE.test(a))));
    return ok;
  };
  return ports.filter(
    (p) =>
      TAP_RE.test(p.tap) &&
      MAC_RE.test(p.mac) &&
      TAP_RE.test(p.bridge) &&
      (p.ip === undefined || IP_RE.test(p.ip)) &&
      (p.l3 === undefined || protectedOk(p.l3)),
  );
}

const ident = (bridge: string): string => bridge.replace(/[.-]/g, '_');

/** The chain of a network's ports. */
export function netChain(bridge: string): string {
  return `net_${ident(bridge)}`;
}

/** The set of a network's protected addresses (gateway and reservations). */
export function protSet(bridge: string): string {
  return `prot_${ident(bridge)}`;
}

/** The rules of a network's chain, without comments (l3: a network kvmnet addresses). */
export function netRules(bridge: string, l3: boolean): string[] {
  const prot = `@${protSet(bridge)}`;
  const r: string[] = ['iifname . ether saddr != @port_mac counter drop'];
  // ARP: sender MAC is the guest's; sender IP its own (0.0.0.0 for a probe). A port with a
  // reservation is pinned to it; one without may not claim a protected address, and is pinned by its lease.
  r.push('ether type arp iifname . arp saddr ether != @port_mac counter drop');
  r.push('ether type arp arp saddr ip 0.0.0.0 accept');
  r.push('ether type arp iifname @reserved iifname . arp saddr ip != @port_ip counter drop');
  if (l3) r.push(`ether type arp iifname != @reserved arp saddr ip ${prot} counter drop`);
  r.push('ether type arp iifname != @reserved ether saddr . arp saddr ip @lease_ip accept');
  r.push('ether type arp iifname != @reserved ether saddr @lease_mac counter drop');
  r.push('ether type arp accept');
  // IPv4: DHCP requests carry the guest's MAC (the frame's source, checked above) as client
  // hardware address (bytes 28-33 of BOOTP); chaddr holds MAC . MAC for every checked port.
  r.push('ether type ip udp sport 68 udp dport 67 ether saddr . @th,288,48 != @chaddr counter drop');
  r.push('ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept');
  r.push('ether type ip iifname @reserved iifname . ip saddr != @port_ip counter drop');
  if (l3) r.push(`ether type ip iifname != @reserved ip saddr ${prot} counter drop`);
  r.push('ether type ip iifname != @reserved ether saddr . ip saddr @lease_ip accept');
  r.push('ether type ip iifname != @reserved ether saddr @lease_mac counter drop');
  r.push('ether type ip accept');
  // IPv6: kvmnet's networks are IPv4 networks; a bridged network's LAN may route IPv6.
  r.push(l3 ? 'ether type ip6 ip6 saddr { ::, fe80::/10 } accept' : 'ether type ip6 accept');
  r.push('counter drop');
  return r;
}

const PREROUTING = 'iifname vmap @ports';
const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
/** The comment of the prerouting rule. */
const PRE_TAG = `kvmnet#${hash(`prerouting\n${PREROUTING}`)}`;
/** How the listing shows the base chain as rendered (type/hook/priority/policy). */
const PRE_BASE = '"filter"/"prerouting"/-200/"accept"';

/** The comment every rule of a network's chain carries: equal tags, equal rules. */
export function netTag(bridge: string, l3: boolean): string {
  return `kvmnet#${hash(`${netChain(bridge)}\n${netRules(bridge, l3).join('\n')}`)}`;
}

/** The fixed sets: name → declaration (as rendered) and type (as `nft -j` lists it). */
const FIXED_SETS: Array<[string, string, string]> = [
  ['lease_ip', 'type ether_addr . ipv4_addr', 'ether_addr . ipv4_addr'],
  ['lease_mac', 'type ether_addr', 'ether_addr'],
  ['port_mac', 'type ifname . ether_addr', 'ifname . ether_addr'],
  ['reserved', 'type ifname', 'ifname'],
  ['port_ip', 'type ifname . ipv4_addr', 'ifname . ipv4_addr'],
  ['chaddr', 'typeof ether saddr . @th,288,48', 'ether_addr . integer'],
];
/** Sets whose elements kvmnet keeps (the lease sets are dnsmasq's). */
const KEPT = new Set(['port_mac', 'reserved', 'port_ip', 'chaddr']);

const chaddrOf = (mac: string): string => `0x${mac.replace(/:/g, '')}`;

/** Everything the table holds for these (checkable) ports: chains by name, elements by set. */
interface Want {
  chains: Map<string, { bridge: string; l3: boolean }>;
  /** Set (or map) name → elements as rendered (the ports map: `"tap" : jump chain`). */
  sets: Map<string, string[]>;
}

/** Each set's elements in natural order. */
function wanted(list: BridgePort[]): Want {
  const chains = new Map<string, { bridge: string; l3: boolean }>();
  const sets = new Map<string, Set<string>>();
  const add = (set: string, e: string): void => {
    let s = sets.get(set);
    if (!s) sets.set(set, (s = new Set()));
    s.add(e);
  };
  for (const k of KEPT) sets.set(k, new Set());
  sets.set('ports', new Set());
  for (const p of list) {
    const chain = netChain(p.bridge);
    if (!chains.has(chain)) chains.set(chain, { bridge: p.bridge, l3: p.l3 !== undefined });
    for (const [set, e] of elementsOf(p)) add(set, e);
    if (p.l3 && !sets.has(protSet(p.bridge))) sets.set(protSet(p.bridge), new Set(p.l3.protected));
  }
  return { chains, sets: new Map([...sets].map(([k, v]) => [k, [...v].sort(cmp)])) };
}

const cmp = compareNatural;

const chainText = (name: string, c: { bridge: string; l3: boolean }): string => {
  const tag = ` comment "${netTag(c.bridge, c.l3)}"`;
  return netRules(c.bridge, c.l3)
    .map((r) => `add rule ${BRIDGE_TABLE} ${name} ${r}${tag}\n`)
    .join('');
};

/** Lease elements for the unreserved ones of these ports (others' leases are left out). */
function leaseText(ports: BridgePort[], leases: BridgeLease[]): string {
  const macs = new Set(ports.filter((p) => p.ip === undefined).map((p) => p.mac));
  const ls = leases
    .filter((l) => macs.has(l.mac) && IP_RE.test(l.ip))
    .sort((a, b) => compareNames(a.mac, b.mac) || compareNames(a.ip, b.ip));
  if (ls.length === 0) return '';
  return (
    `add element ${BRIDGE_TABLE} lease_ip { ${ls.map((l) => `${l.mac} . ${l.ip}`).join(', ')} }\n` +
    `add element ${BRIDGE_TABLE} lease_mac { ${[...new Set(ls.map((l) => l.mac))].join(', ')} }\n`
  );
}

const elements = (es: string[]): string =>
  es.length ? `\n\t\telements = { ${es.join(',\n\t\t\t     ')} }` : '';

/**
 * The transaction that makes the table exactly this, as a whole (removes it when no port is
 * checked). Leases of MACs that no checked port without a reservation has are left out.
 */
export function renderBridgeTable(ports: BridgePort[], leases: BridgeLease[]): string {
  const list = checkablePorts(ports);
  const head = `table ${BRIDGE_TABLE}\ndelete table ${BRIDGE_TABLE}\n`;
  if (list.length === 0) return head;
  const w = wanted(list);
  const out: string[] = [`table ${BRIDGE_TABLE} {`];
  for (const [name, decl] of FIXED_SETS)
    out.push(`\tset ${name} {\n\t\t${decl}${elements(w.sets.get(name) ?? [])}\n\t}`);
  for (const [name, es] of w.sets) {
    if (name.startsWith('prot_')) out.push(`\tset ${name} {\n\t\ttype ipv4_addr${elements(es)}\n\t}`);
  }
  out.push(
    `\tmap ports {\n\t\ttype ifname : verdict${elements(w.sets.get('ports') ?? [])}\n\t}`,
    `\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\t${PREROUTING} comment "${PRE_TAG}"\n\t}`,
  );
  for (const [name, c] of w.chains) {
    const tag = ` comment "${netTag(c.bridge, c.l3)}"`;
    out.push(
      `\tchain ${name} {\n${netRules(c.bridge, c.l3)
        .map((r) => `\t\t${r}${tag}\n`)
        .join('')}\t}`,
    );
  }
  return head + out.join('\n') + '\n}\n' + leaseText(list, leases);
}

export interface BridgeObserved {
  table: boolean;
  /** Chains by name: how a base chain hooks in ('' for a regular chain), its rules' comments in order. */
  chains: Map<string, { base: string; comments: Array<string | undefined> }>;
  /**
   * Sets and the map ports by name: their type (' . ' between the parts of a concatenation, the
   * map's ' : verdict' appended) and elements written as kvmnet renders them (null: one it never writes).
   */
  sets: Map<string, { type: string; elems: Array<string | null> }>;
}

const IFNAME_FIRST = new Set(['ports', 'reserved', 'port_mac', 'port_ip']);

/** An element of set (or map) `set` in `nft -j` output, written as kvmnet renders it (null: not one kvmnet writes). */
function elemText(e: unknown, set: string): string | null {
  const part = (x: unknown, i: number): string | null => {
    if (i === 0 && IFNAME_FIRST.has(set)) return typeof x === 'string' && TAP_RE.test(x) ? `"${x}"` : null;
    if (set === 'chaddr' && i === 1)
      return typeof x === 'number' && Number.isSafeInteger(x)
        ? `0x${x.toString(16).padStart(12, '0')}`
        : null;
    return typeof x === 'string' && (IP_RE.test(x) || MAC_RE.test(x)) ? x : null;
  };
  if (set === 'ports') {
    if (!Array.isArray(e)) return null;
    const key = part(e[0], 0);
    const target = (e[1] as { jump?: { target?: unknown } } | undefined)?.jump?.target;
    return key !== null && typeof target === 'string' && /^[A-Za-z0-9_]+$/.test(target)
      ? `${key} : jump ${target}`
      : null;
  }
  const c = (e as { concat?: unknown } | null)?.concat;
  if (Array.isArray(c)) {
    const parts = c.map((x, i) => part(x, i));
    return parts.every((x) => x !== null) ? parts.join(' . ') : null;
  }
  return part(e, 0);
}

/** Reads `nft -j list table bridge kvmnet` (null: no table). */
export function parseBridgeTable(json: unknown): BridgeObserved {
  const obs: BridgeObserved = { table: false, chains: new Map(), sets: new Map() };
  if (json === null) return obs;
  obs.table = true;
  const items = (json as { nftables?: Array<Record<string, Record<string, unknown>>> }).nftables ?? [];
  const chain = (name: string) => {
    let c = obs.chains.get(name);
    if (!c) obs.chains.set(name, (c = { base: '', comments: [] }));
    return c;
  };
  for (const it of items) {
    if (it.chain && typeof it.chain.name === 'string') {
      const c = it.chain;
      chain(c.name as string).base =
        c.hook === undefined
          ? ''
          : [c.type, c.hook, c.prio, c.policy].map((x) => JSON.stringify(x)).join('/');
    }
    if (it.rule && typeof it.rule.chain === 'string') {
      chain(it.rule.chain).comments.push(typeof it.rule.comment === 'string' ? it.rule.comment : undefined);
    }
    const s = it.set ?? it.map;
    if (s && typeof s.name === 'string') {
      const name = s.name;
      let type = Array.isArray(s.type) ? s.type.map(String).join(' . ') : String(s.type);
      if (it.map) type += ` : ${String(s.map)}`;
      const lease = name === 'lease_ip' || name === 'lease_mac';
      const elems = lease ? [] : ((s.elem as unknown[] | undefined) ?? []).map((e) => elemText(e, name));
      obs.sets.set(name, { type, elems });
    }
  }
  return obs;
}

/**
 * The table as its listing (parseBridgeTable) reads when it holds exactly what renderBridgeTable
 * renders for these ports, lease elements aside: what a change planned from the stored state
 * alone, without listing the table, is diffed against (a net stop's fast path).
 */
export function expectedBridgeTable(ports: BridgePort[]): BridgeObserved {
  const list = checkablePorts(ports);
  const obs: BridgeObserved = { table: list.length > 0, chains: new Map(), sets: new Map() };
  if (!obs.table) return obs;
  const w = wanted(list);
  obs.chains.set('prerouting', { base: PRE_BASE, comments: [PRE_TAG] });
  for (const [name, c] of w.chains) {
    const tag = netTag(c.bridge, c.l3);
    obs.chains.set(name, { base: '', comments: netRules(c.bridge, c.l3).map(() => tag) });
  }
  for (const [name, , type] of FIXED_SETS) obs.sets.set(name, { type, elems: w.sets.get(name) ?? [] });
  obs.sets.set('ports', { type: 'ifname : verdict', elems: w.sets.get('ports') ?? [] });
  for (const [name, es] of w.sets) {
    if (name.startsWith('prot_')) obs.sets.set(name, { type: 'ipv4_addr', elems: es });
  }
  return obs;
}

/** What differs between the table and these ports, and what a transaction changes to fix it. */
export interface BridgeDiff {
  /** The differences, for messages (empty: nothing). */
  why: string[];
  /** 'rebuild': the table as a whole (missing, or its base objects are wrong); 'remove': no port is checked. */
  whole: 'rebuild' | 'remove' | null;
  /** Ports added (their leases are added with them). */
  added: BridgePort[];
  /** prot_ sets created (first), chains added or refilled, elements added; elements deleted, chains and sets deleted (last). */
  newSets: string[];
  fill: Array<[string, { bridge: string; l3: boolean }]>;
  elemAdd: Array<[string, string[]]>;
  elemDel: Array<[string, string[]]>;
  drop: string[];
  goneSets: string[];
}

/** The differences between the table and these ports, object by object. */
export function bridgeDiff(ports: BridgePort[], obs: BridgeObserved): BridgeDiff {
  const d: BridgeDiff = {
    why: [],
    whole: null,
    added: [],
    newSets: [],
    fill: [],
    elemAdd: [],
    elemDel: [],
    drop: [],
    goneSets: [],
  };
  const t = `table ${BRIDGE_TABLE}`;
  const list = checkablePorts(ports);
  if (list.length === 0) {
    if (obs.table) d.why.push(`${t} is no longer needed`);
    d.whole = obs.table ? 'remove' : null;
    return d;
  }
  const rebuild = (why: string): BridgeDiff => ({ ...d, why: [why], whole: 'rebuild' });
  if (!obs.table) return rebuild(`${t} is missing`);
  const pre = obs.chains.get('prerouting');
  if (!pre || pre.base !== PRE_BASE || pre.comments.length !== 1 || pre.comments[0] !== PRE_TAG)
    return rebuild(`${t}: chain prerouting is not as rendered`);
  if (obs.sets.get('ports')?.type !== 'ifname : verdict') return rebuild(`${t}: map ports is missing`);
  for (const [name, , type] of FIXED_SETS) {
    if (obs.sets.get(name)?.type !== type) return rebuild(`${t}: set ${name} is missing`);
  }
  for (const [name, c] of obs.chains) {
    if (name !== 'prerouting' && (c.base !== '' || !name.startsWith('net_')))
      return rebuild(`${t}: chain ${name} is not kvmnet's`);
  }
  const fixed = new Set(['ports', ...FIXED_SETS.map(([n]) => n)]);
  for (const [name, s] of obs.sets) {
    if (!fixed.has(name) && (!name.startsWith('prot_') || s.type !== 'ipv4_addr'))
      return rebuild(`${t}: set ${name} is not kvmnet's`);
    if (s.elems.some((e) => e === null)) return rebuild(`${t}: set ${name} has elements kvmnet never writes`);
  }
  const w = wanted(list);
  // Chains of the networks.
  for (const [name, c] of w.chains) {
    const got = obs.chains.get(name);
    const n = netRules(c.bridge, c.l3).length;
    const tag = netTag(c.bridge, c.l3);
    if (!got) {
      d.fill.push([name, c]);
      d.why.push(`${t}: chain ${name} is missing`);
    } else if (got.comments.length !== n || got.comments.some((x) => x !== tag)) {
      d.fill.push([name, c]);
      const ok = got.comments.filter((x) => x === tag).length;
      d.why.push(`${t}: chain ${name} has ${got.comments.length} rules, ${ok} of the ${n} expected`);
    }
  }
  for (const name of obs.chains.keys()) {
    if (name !== 'prerouting' && !w.chains.has(name)) {
      d.drop.push(name);
      d.why.push(`${t}: chain ${name} is no longer needed`);
    }
  }
  // Elements of the map and the sets.
  for (const [name, members] of w.sets) {
    const got = obs.sets.get(name);
    if (!got) {
      d.newSets.push(name);
      d.why.push(`${t}: set ${name} is missing`);
    }
    const have = new Set(got?.elems ?? []);
    const add = members.filter((e) => !have.has(e));
    const want = new Set(members);
    const del = [...have].filter((e): e is string => e !== null && !want.has(e)).sort(cmp);
    // A map key pointing elsewhere is deleted before it is added again.
    if (add.length) d.elemAdd.push([name, add]);
    if (del.length) d.elemDel.push([name, del]);
    const what = name === 'ports' ? `map ${name}` : `set ${name}`;
    if (got && add.length) d.why.push(`${t}: ${what} lacks ${add.join(', ')}`);
    if (del.length) d.why.push(`${t}: ${what} still has ${del.join(', ')}`);
  }
  for (const name of obs.sets.keys()) {
    if (name.startsWith('prot_') && !w.sets.has(name)) {
      d.goneSets.push(name);
      d.why.push(`${t}: set ${name} is no longer needed`);
    }
  }
  const newKeys = new Set((d.elemAdd.find(([n]) => n === 'ports')?.[1] ?? []).map((e) => e.split(' : ')[0]));
  d.added = list.filter((p) => newKeys.has(`"${p.tap}"`));
  return d;
}

/**
 * One port added or removed, as element changes: what `wanted` holds for `after` and not for
 * `before` (added) and the reverse (deleted), computed from the port lists alone, without reading
 * the table. Null when the change is more than elements: the table, a network's chain or a prot_
 * set comes or goes (the first or last checked port), which the full diff (bridgeDiff) handles;
 * empty when no checked port is on either side (no table before or after).
 * Only the ports that differ are rendered; the others are indexed by tap and MAC, so with 200
 * ports it costs a pass over them rather than every port's elements twice (about 1 ms before).
 * A property test checks it against the full diff of any two port lists.
 */
export interface BridgeElementDelta {
  elemAdd: Array<[string, string[]]>;
  elemDel: Array<[string, string[]]>;
  /** Ports added (their current leases are added with them, as renderBridgeUpdate does). */
  added: BridgePort[];
}

export function bridgeElementDelta(before: BridgePort[], after: BridgePort[]): BridgeElementDelta | null {
  const b = checkable(before);
  const a = checkable(after);
  // No checked port on either side (e.g. a libvirt port, whose tap kvmnet does not know yet, on a
  // network without checked ports): there is no table, and it stays away.
  if (b.length === 0 && a.length === 0) return { elemAdd: [], elemDel: [], added: [] };
  if (b.length === 0 || a.length === 0) return null;
  // The chains and prot_ sets each side needs, with each network's protected list (its first
  // port's, as `wanted` takes it): when they differ, more than elements changes.
  const shape = (list: BridgePort[]): { chains: Set<string>; prot: Map<string, string[]> } => {
    const chains = new Set<string>();
    const prot = new Map<string, string[]>();
    for (const p of list) {
      chains.add(netChain(p.bridge));
      if (p.l3 && !prot.has(protSet(p.bridge))) prot.set(protSet(p.bridge), p.l3.protected);
    }
    return { chains, prot };
  };
  const sb = shape(b);
  const sa = shape(a);
  const sameKeys = (x: Set<string> | Map<string, unknown>, y: Set<string> | Map<string, unknown>): boolean =>
    x.size === y.size && [...x.keys()].every((k) => y.has(k));
  if (!sameKeys(sb.chains, sa.chains) || !sameKeys(sb.prot, sa.prot)) return null;
  // Only the ports that differ (by what their elements are made of) are rendered: a port's
  // elements hold its tap, except chaddr, which holds its MAC alone, so an element of one of them
  // is on the other side exactly when a port there with its tap (its MAC for chaddr) makes it.
  const key = (p: BridgePort): string => `${p.tap} ${p.mac} ${netChain(p.bridge)} ${p.ip ?? ''}`;
  const index = (list: BridgePort[]) => {
    const keys = new Set<string>();
    const byTap = new Map<string, BridgePort[]>();
    const macs = new Set<string>();
    for (const p of list) {
      keys.add(key(p));
      const same = byTap.get(p.tap);
      if (same) same.push(p);
      else byTap.set(p.tap, [p]);
      macs.add(p.mac);
    }
    return { keys, byTap, macs };
  };
  const ib = index(b);
  const ia = index(a);
  const makes = (side: ReturnType<typeof index>, set: string, e: string, p: BridgePort): boolean =>
    set === 'chaddr'
      ? side.macs.has(p.mac)
      : (side.byTap.get(p.tap) ?? []).some((q) => elementsOf(q).some(([s, x]) => s === set && x === e));
  const adds = new Map<string, Set<string>>();
  const dels = new Map<string, Set<string>>();
  const put = (m: Map<string, Set<string>>, set: string, e: string): void => {
    let s = m.get(set);
    if (!s) m.set(set, (s = new Set()));
    s.add(e);
  };
  for (const p of a)
    if (!ib.keys.has(key(p)))
      for (const [set, e] of elementsOf(p)) if (!makes(ib, set, e, p)) put(adds, set, e);
  for (const p of b)
    if (!ia.keys.has(key(p)))
      for (const [set, e] of elementsOf(p)) if (!makes(ia, set, e, p)) put(dels, set, e);
  for (const [name, after] of sa.prot) {
    const had = new Set(sb.prot.get(name) ?? []);
    const want = new Set(after);
    for (const e of want) if (!had.has(e)) put(adds, name, e);
    for (const e of had) if (!want.has(e)) put(dels, name, e);
  }
  // In the order `wanted` holds the sets: the kept ones, the ports map, then the prot_ sets.
  const order = [...KEPT, 'ports', ...sa.prot.keys()];
  const listed = (m: Map<string, Set<string>>): Array<[string, string[]]> =>
    order.flatMap((n): Array<[string, string[]]> => {
      const es = m.get(n);
      return es && es.size ? [[n, [...es].sort(cmp)]] : [];
    });
  const d: BridgeElementDelta = { elemAdd: listed(adds), elemDel: listed(dels), added: [] };
  const newKeys = new Set([...(adds.get('ports') ?? [])].map((e) => e.split(' : ')[0]));
  d.added = a.filter((p) => newKeys.has(`"${p.tap}"`));
  return d;
}

/** The elements one port puts in the sets and the ports map (`wanted` and a port delta take them here). */
function elementsOf(p: BridgePort): Array<[string, string]> {
  const tap = `"${p.tap}"`;
  const out: Array<[string, string]> = [
    ['port_mac', `${tap} . ${p.mac}`],
    ['chaddr', `${p.mac} . ${chaddrOf(p.mac)}`],
    ['ports', `${tap} : jump ${netChain(p.bridge)}`],
  ];
  if (p.ip !== undefined) out.push(['reserved', tap], ['port_ip', `${tap} . ${p.ip}`]);
  return out;
}

/**
 * The transaction of an element delta (deletions first, as renderBridgeUpdate orders them, then
 * additions and the added ports' leases) and its undo (the reverse, without the leases: those are
 * dnsmasq's, and the next full apply leaves them alone too).
 */
export function renderElementDelta(
  d: BridgeElementDelta,
  leases: BridgeLease[],
): { script: string; undo: string } {
  const del = (list: Array<[string, string[]]>): string =>
    list.map(([n, es]) => deleteElements(n, es)).join('');
  const add = (list: Array<[string, string[]]>): string => list.map(([n, es]) => addElements(n, es)).join('');
  return {
    script: del(d.elemDel) + add(d.elemAdd) + leaseText(d.added, leases),
    undo: del(d.elemAdd) + add(d.elemDel),
  };
}

/** What differs between the table and these ports (empty: nothing). */
export function bridgeDrift(ports: BridgePort[], obs: BridgeObserved): string[] {
  return bridgeDiff(ports, obs).why;
}

/** Only the keys of map elements (a delete names the key). */
const keyOf = (set: string, e: string): string => (set === 'ports' ? (e.split(' : ')[0] ?? e) : e);
/** `delete element` of a set's or map's elements (a map's by key). */
const deleteElements = (set: string, es: string[]): string =>
  `delete element ${BRIDGE_TABLE} ${set} { ${es.map((e) => keyOf(set, e)).join(', ')} }\n`;
const addElements = (set: string, es: string[]): string =>
  `add element ${BRIDGE_TABLE} ${set} { ${es.join(', ')} }\n`;

/**
 * The transaction that makes the table exactly this: the whole table when the diff says so, else
 * only what differs (plus the current leases of a port without a reservation that is added).
 * Empty when nothing differs.
 */
export function renderBridgeUpdate(ports: BridgePort[], diff: BridgeDiff, leases: BridgeLease[]): string {
  if (diff.whole) return renderBridgeTable(diff.whole === 'remove' ? [] : ports, leases);
  const t = BRIDGE_TABLE;
  let s = '';
  for (const name of diff.newSets) s += `add set ${t} ${name} { type ipv4_addr; }\n`;
  // Deletions of elements first: a map key that now jumps elsewhere is deleted, then added.
  for (const [name, es] of diff.elemDel) {
    if (name === 'ports' || !name.startsWith('prot_')) s += deleteElements(name, es);
  }
  for (const [name, c] of diff.fill)
    s += `add chain ${t} ${name}\nflush chain ${t} ${name}\n${chainText(name, c)}`;
  for (const [name, es] of diff.elemAdd) s += addElements(name, es);
  s += leaseText(diff.added, leases);
  for (const c of diff.drop) s += `flush chain ${t} ${c}\ndelete chain ${t} ${c}\n`;
  for (const [name, es] of diff.elemDel) {
    if (name.startsWith('prot_') && !diff.goneSets.includes(name)) s += deleteElements(name, es);
  }
  for (const name of diff.goneSets) s += `delete set ${t} ${name}\n`;
  return s;
}

/**
 * dnsmasq's dhcp-script: run (as root, by dnsmasq's helper process) with "add|old|del MAC IP
 * [HOSTNAME]" for every lease change (del also when a lease expires) and, at start, "old" or "del"
 * for every lease in the lease file. It mirrors the lease into lease_ip and lease_mac, and never
 * fails dnsmasq (always exits 0).
 */
export function renderLeaseHook(): string {
  const t = 'bridge kvmnet';
  return `#!/bin/sh
# kvmnet lease hook (anti-spoofing): dnsmasq runs it when a DHCP lease is added, renewed, released
# or expires; it keeps the lease sets of table ${t} in line. Written by kvmnet; changes are overwritten.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
op=$1 mac=$2 ip=$3
case $mac in *[!0-9a-f:]*|'') exit 0 ;; esac
case $ip in *[!0-9.]*|'') exit 0 ;; esac
nft list set ${t} lease_ip >/dev/null 2>&1 || exit 0
case $op in
add|old)
	nft -f - >/dev/null 2>&1 <<EOF
add element ${t} lease_ip { $mac . $ip }
add element ${t} lease_mac { $mac }
EOF
	;;
del)
	nft delete element ${t} lease_ip "{ $mac . $ip }" >/dev/null 2>&1
	# The MAC stays pinned while it has another address (a guest that moved).
	if ! nft list set ${t} lease_ip 2>/dev/null | grep -q "$mac \\. "; then
		nft delete element ${t} lease_mac "{ $mac }" >/dev/null 2>&1
	fi
	;;
esac
exit 0
`;
}
