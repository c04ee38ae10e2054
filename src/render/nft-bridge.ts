// Renders kvmnet's anti-spoofing table (`table bridge kvmnet`) as `nft -f` text, and the dnsmasq
// lease hook that keeps its lease sets current. Pure. Separate from `table inet kvmnet` (render/nft.ts):
// it filters frames as they enter the bridge from a guest's tap, before any IP hook sees them.
//
// Layout (like libvirt's clean-traffic nwfilter): a base chain at the bridge prerouting hook looks
// up the ingress port in the verdict map `ports` and jumps to the port's chain `port_<tap>`. A port's
// chain drops frames whose source MAC is not the guest's, ARP whose sender MAC/IP is not the guest's,
// IPv4 from an address not the guest's (once it has a reservation or a lease; DHCP from 0.0.0.0 is
// always allowed), IPv6 other than link-local on kvmnet's IPv4 networks, and every other ethertype.
// On a network kvmnet addresses, the set prot_<bridge> holds the addresses no guest may claim: the
// gateway and every reservation of the network (its ports' and DHCP hosts'). The chain of a port
// without a reservation drops ARP and IPv4 from them; a port with one needs no such rule (it drops
// every source but its own). So a port's chain has a fixed number of rules whatever the number of
// ports, and the table grows linearly.
// A port without a reservation is pinned by its DHCP lease: the sets lease_ip (MAC . IP) and
// lease_mac (MAC) hold the leases, filled by kvmnet from the lease files whenever it rebuilds the
// table (or adds such a port's chain) and by dnsmasq's dhcp-script (renderLeaseHook) when a lease is
// added, renewed, released or expires. (No nft timeouts: dnsmasq reports expiry itself, and the
// listing stays stable.)
//
// Drift is found object by object: the rules of a port's chain carry the comment kvmnet#TAG, TAG a
// hash of that port's rules (the prerouting rule has its own), and the map ports and the prot_ sets
// are compared element by element. A change is one transaction for what differs only: a port's
// chain added, refilled or deleted, its element of ports, the set members. The table is rebuilt as
// a whole (one transaction) only when it is missing or its base chain, map or lease sets are not as
// rendered.
import { createHash } from 'node:crypto';

export const BRIDGE_TABLE = 'bridge kvmnet';

/** A port that kvmnet checks: its tap, guest MAC, and what its network knows about addresses. */
export interface BridgePort {
  tap: string;
  /** The guest's MAC (52:54:00:…), not the tap's (fe:…). */
  mac: string;
  /** The port's reservation: its only IPv4 source. */
  ip?: string;
  /**
   * Present on networks kvmnet addresses (not bridged): the network's bridge (it names the set
   * prot_<bridge>) and the addresses in that set — the gateway and every reservation of the
   * network, the port's own included — which a guest without a reservation must not claim; IPv6 is
   * then link-local only.
   */
  l3?: { bridge: string; protected: string[] };
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
  return ports
    .filter(
      (p) =>
        TAP_RE.test(p.tap) &&
        MAC_RE.test(p.mac) &&
        (p.ip === undefined || IP_RE.test(p.ip)) &&
        (p.l3 === undefined || (TAP_RE.test(p.l3.bridge) && p.l3.protected.every((a) => IP_RE.test(a)))),
    )
    .sort((a, b) => a.tap.localeCompare(b.tap, 'en', { numeric: true }));
}

export function portChain(tap: string): string {
  return `port_${tap.replace(/[.-]/g, '_')}`;
}

/** The set of a network's protected addresses (gateway and reservations). */
export function protSet(bridge: string): string {
  return `prot_${bridge.replace(/[.-]/g, '_')}`;
}

/** The rules of one port's chain, without comments. */
export function portRules(p: BridgePort): string[] {
  const m = p.mac;
  const chaddr = `0x${m.replace(/:/g, '')}`;
  // Only a port without a reservation needs the claim rule: one with a reservation drops every
  // source but its own in the next rule anyway (its own address is in the set too).
  const claim = p.l3 && p.ip === undefined ? `@${protSet(p.l3.bridge)}` : '';
  const r: string[] = [`ether saddr != ${m} counter drop`];
  // ARP: sender MAC is the guest's; sender IP its own (0.0.0.0 for a probe).
  r.push(`ether type arp arp saddr ether != ${m} counter drop`);
  r.push('ether type arp arp saddr ip 0.0.0.0 accept');
  if (claim) r.push(`ether type arp arp saddr ip ${claim} counter drop`);
  if (p.ip !== undefined) r.push(`ether type arp arp saddr ip != ${p.ip} counter drop`);
  else {
    r.push('ether type arp ether saddr . arp saddr ip @lease_ip accept');
    r.push('ether type arp ether saddr @lease_mac counter drop');
  }
  r.push('ether type arp accept');
  // IPv4: DHCP requests carry the guest's MAC as client hardware address (bytes 28-33 of BOOTP).
  r.push(`ether type ip udp sport 68 udp dport 67 @th,288,48 != ${chaddr} counter drop`);
  r.push('ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept');
  if (claim) r.push(`ether type ip ip saddr ${claim} counter drop`);
  if (p.ip !== undefined) r.push(`ether type ip ip saddr != ${p.ip} counter drop`);
  else {
    r.push('ether type ip ether saddr . ip saddr @lease_ip accept');
    r.push('ether type ip ether saddr @lease_mac counter drop');
  }
  r.push('ether type ip accept');
  // IPv6: kvmnet's networks are IPv4 networks; a bridged network's LAN may route IPv6.
  r.push(p.l3 ? 'ether type ip6 ip6 saddr { ::, fe80::/10 } accept' : 'ether type ip6 accept');
  r.push('counter drop');
  return r;
}

const PREROUTING = 'iifname vmap @ports';
const hash = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
/** The comment of the prerouting rule. */
const PRE_TAG = `kvmnet#${hash(`prerouting\n${PREROUTING}`)}`;
/** How the listing shows the base chain as rendered (type/hook/priority/policy). */
const PRE_BASE = '"filter"/"prerouting"/-200/"accept"';
const LEASE_SETS: Record<string, string> = { lease_ip: 'ether_addr . ipv4_addr', lease_mac: 'ether_addr' };

/** The comment every rule of the port's chain carries: equal tags, equal rules. */
export function portTag(p: BridgePort): string {
  return `kvmnet#${hash(`${portChain(p.tap)}\n${portRules(p).join('\n')}`)}`;
}

/** The prot_ sets of these (checkable) ports' networks: name → members, sorted. */
function wantedSets(list: BridgePort[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of list) {
    if (!p.l3) continue;
    const name = protSet(p.l3.bridge);
    if (!out.has(name)) out.set(name, [...new Set(p.l3.protected)].sort());
  }
  return out;
}

const chainText = (p: BridgePort): string => {
  const c = ` comment "${portTag(p)}"`;
  return portRules(p)
    .map((r) => `add rule ${BRIDGE_TABLE} ${portChain(p.tap)} ${r}${c}\n`)
    .join('');
};

/** Lease elements for the unreserved ones of these ports (others' leases are left out). */
function leaseText(ports: BridgePort[], leases: BridgeLease[]): string {
  const macs = new Set(ports.filter((p) => p.ip === undefined).map((p) => p.mac));
  const ls = leases
    .filter((l) => macs.has(l.mac) && IP_RE.test(l.ip))
    .sort((a, b) => a.mac.localeCompare(b.mac) || a.ip.localeCompare(b.ip));
  if (ls.length === 0) return '';
  return (
    `add element ${BRIDGE_TABLE} lease_ip { ${ls.map((l) => `${l.mac} . ${l.ip}`).join(', ')} }\n` +
    `add element ${BRIDGE_TABLE} lease_mac { ${[...new Set(ls.map((l) => l.mac))].join(', ')} }\n`
  );
}

/**
 * The transaction that makes the table exactly this, as a whole (removes it when no port is
 * checked). Leases of MACs that no checked port without a reservation has are left out.
 */
export function renderBridgeTable(ports: BridgePort[], leases: BridgeLease[]): string {
  const list = checkablePorts(ports);
  const head = `table ${BRIDGE_TABLE}\ndelete table ${BRIDGE_TABLE}\n`;
  if (list.length === 0) return head;
  const out: string[] = [
    `table ${BRIDGE_TABLE} {`,
    '\tset lease_ip {\n\t\ttype ether_addr . ipv4_addr\n\t}',
    '\tset lease_mac {\n\t\ttype ether_addr\n\t}',
  ];
  for (const [name, members] of wantedSets(list)) {
    const elems = members.length ? `\n\t\telements = { ${members.join(', ')} }` : '';
    out.push(`\tset ${name} {\n\t\ttype ipv4_addr${elems}\n\t}`);
  }
  out.push(
    `\tmap ports {\n\t\ttype ifname : verdict\n\t\telements = { ${list
      .map((p) => `"${p.tap}" : jump ${portChain(p.tap)}`)
      .join(',\n\t\t\t     ')} }\n\t}`,
    `\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\t${PREROUTING} comment "${PRE_TAG}"\n\t}`,
  );
  for (const p of list) {
    const c = ` comment "${portTag(p)}"`;
    out.push(
      `\tchain ${portChain(p.tap)} {\n${portRules(p)
        .map((r) => `\t\t${r}${c}\n`)
        .join('')}\t}`,
    );
  }
  return head + out.join('\n') + '\n}\n' + leaseText(list, leases);
}

export interface BridgeObserved {
  table: boolean;
  /** Chains by name: how a base chain hooks in ('' for a regular chain), its rules' comments in order. */
  chains: Map<string, { base: string; comments: Array<string | undefined> }>;
  /** Sets by name: their type (' . ' between the parts of a concatenation) and plain elements. */
  sets: Map<string, { type: string; elems: string[] }>;
  /** The map ports (key → the chain it jumps to, '' for another verdict); null when it is missing or of another type. */
  ports: Map<string, string> | null;
}

/** Reads `nft -j list table bridge kvmnet` (null: no table). */
export function parseBridgeTable(json: unknown): BridgeObserved {
  const obs: BridgeObserved = { table: false, chains: new Map(), sets: new Map(), ports: null };
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
    if (it.set && typeof it.set.name === 'string') {
      const type = Array.isArray(it.set.type) ? it.set.type.join(' . ') : String(it.set.type);
      const elems = ((it.set.elem as unknown[] | undefined) ?? []).map((e) =>
        typeof e === 'string' ? e : JSON.stringify(e),
      );
      obs.sets.set(it.set.name, { type, elems });
    }
    if (it.map && it.map.name === 'ports' && it.map.type === 'ifname' && it.map.map === 'verdict') {
      obs.ports = new Map();
      for (const e of (it.map.elem as unknown[] | undefined) ?? []) {
        if (!Array.isArray(e) || typeof e[0] !== 'string') continue;
        const target = (e[1] as { jump?: { target?: unknown } } | undefined)?.jump?.target;
        obs.ports.set(e[0], typeof target === 'string' ? target : '');
      }
    }
  }
  return obs;
}

/** What differs between the table and these ports, and what a transaction changes to fix it. */
export interface BridgeDiff {
  /** The differences, for messages (empty: nothing). */
  why: string[];
  /** 'rebuild': the table as a whole (missing, or its base objects are wrong); 'remove': no port is checked. */
  whole: 'rebuild' | 'remove' | null;
  /** Ports whose chain is added or refilled. */
  fill: BridgePort[];
  /** Chains deleted (ports no longer checked). */
  drop: string[];
  /** Ports added to the map ports (after their chains), and keys deleted from it. */
  mapAdd: BridgePort[];
  mapDel: string[];
  /** prot_ sets created (before the chains), their members added and deleted, sets deleted (last). */
  newSets: string[];
  elemAdd: Array<[string, string[]]>;
  elemDel: Array<[string, string[]]>;
  goneSets: string[];
}

/** The differences between the table and these ports, object by object. */
export function bridgeDiff(ports: BridgePort[], obs: BridgeObserved): BridgeDiff {
  const d: BridgeDiff = {
    why: [],
    whole: null,
    fill: [],
    drop: [],
    mapAdd: [],
    mapDel: [],
    newSets: [],
    elemAdd: [],
    elemDel: [],
    goneSets: [],
  };
  const list = checkablePorts(ports);
  if (list.length === 0) {
    if (obs.table) d.why.push(`table ${BRIDGE_TABLE} is no longer needed`);
    d.whole = obs.table ? 'remove' : null;
    return d;
  }
  const rebuild = (why: string): BridgeDiff => ({ ...d, why: [why], whole: 'rebuild' });
  if (!obs.table) return rebuild(`table ${BRIDGE_TABLE} is missing`);
  const pre = obs.chains.get('prerouting');
  if (!pre || pre.base !== PRE_BASE || pre.comments.length !== 1 || pre.comments[0] !== PRE_TAG)
    return rebuild(`table ${BRIDGE_TABLE}: chain prerouting is not as rendered`);
  if (!obs.ports) return rebuild(`table ${BRIDGE_TABLE}: map ports is missing`);
  for (const [name, type] of Object.entries(LEASE_SETS)) {
    if (obs.sets.get(name)?.type !== type) return rebuild(`table ${BRIDGE_TABLE}: set ${name} is missing`);
  }
  for (const [name, c] of obs.chains) {
    if (name !== 'prerouting' && (c.base !== '' || !name.startsWith('port_')))
      return rebuild(`table ${BRIDGE_TABLE}: chain ${name} is not kvmnet's`);
  }
  for (const [name, s] of obs.sets) {
    if (
      !(name in LEASE_SETS) &&
      (!name.startsWith('prot_') || s.type !== 'ipv4_addr' || !s.elems.every((e) => IP_RE.test(e)))
    )
      return rebuild(`table ${BRIDGE_TABLE}: set ${name} is not kvmnet's`);
  }
  for (const key of obs.ports.keys()) {
    if (!TAP_RE.test(key)) return rebuild(`table ${BRIDGE_TABLE}: map ports has a key kvmnet never writes`);
  }
  const t = `table ${BRIDGE_TABLE}`;
  // Sets of protected addresses.
  const sets = wantedSets(list);
  for (const [name, members] of sets) {
    const got = obs.sets.get(name);
    if (!got) {
      d.newSets.push(name);
      d.why.push(`${t}: set ${name} is missing`);
    }
    const have = new Set(got?.elems ?? []);
    const add = members.filter((a) => !have.has(a));
    const want = new Set(members);
    const del = [...have].filter((a) => !want.has(a)).sort();
    if (add.length) d.elemAdd.push([name, add]);
    if (del.length) d.elemDel.push([name, del]);
    if (got && add.length) d.why.push(`${t}: set ${name} lacks ${add.join(', ')}`);
    if (del.length) d.why.push(`${t}: set ${name} still has ${del.join(', ')}`);
  }
  for (const name of obs.sets.keys()) {
    if (name.startsWith('prot_') && !sets.has(name)) {
      d.goneSets.push(name);
      d.why.push(`${t}: set ${name} is no longer needed`);
    }
  }
  // The ports' chains and the map that jumps to them.
  const wantChains = new Set<string>();
  const wantKeys = new Set<string>();
  for (const p of list) {
    const name = portChain(p.tap);
    wantChains.add(name);
    wantKeys.add(p.tap);
    const got = obs.chains.get(name);
    const n = portRules(p).length;
    const tag = portTag(p);
    if (!got) {
      d.fill.push(p);
      d.why.push(`${t}: chain ${name} is missing`);
    } else if (got.comments.length !== n || got.comments.some((c) => c !== tag)) {
      d.fill.push(p);
      const ok = got.comments.filter((c) => c === tag).length;
      d.why.push(`${t}: chain ${name} has ${got.comments.length} rules, ${ok} of the ${n} expected`);
    }
    const target = obs.ports.get(p.tap);
    if (target !== name) {
      if (target !== undefined) d.mapDel.push(p.tap);
      d.mapAdd.push(p);
      d.why.push(`${t}: map ports does not send ${p.tap} to ${name}`);
    }
  }
  for (const key of obs.ports.keys()) {
    if (!wantKeys.has(key)) {
      d.mapDel.push(key);
      d.why.push(`${t}: map ports still checks ${key}`);
    }
  }
  for (const name of obs.chains.keys()) {
    if (name !== 'prerouting' && !wantChains.has(name)) {
      d.drop.push(name);
      d.why.push(`${t}: chain ${name} is no longer needed`);
    }
  }
  return d;
}

/** What differs between the table and these ports (empty: nothing). */
export function bridgeDrift(ports: BridgePort[], obs: BridgeObserved): string[] {
  return bridgeDiff(ports, obs).why;
}

/**
 * The transaction that makes the table exactly this: the whole table when the diff says so, else
 * only what differs (plus the current leases of a port without a reservation whose chain is added).
 * Empty when nothing differs.
 */
export function renderBridgeUpdate(ports: BridgePort[], diff: BridgeDiff, leases: BridgeLease[]): string {
  if (diff.whole) return renderBridgeTable(diff.whole === 'remove' ? [] : ports, leases);
  const t = BRIDGE_TABLE;
  let s = '';
  for (const name of diff.newSets) s += `add set ${t} ${name} { type ipv4_addr; }\n`;
  for (const [name, a] of diff.elemAdd) s += `add element ${t} ${name} { ${a.join(', ')} }\n`;
  for (const p of diff.fill) {
    const c = portChain(p.tap);
    s += `add chain ${t} ${c}\nflush chain ${t} ${c}\n${chainText(p)}`;
  }
  s += leaseText(diff.fill, leases);
  for (const k of diff.mapDel) s += `delete element ${t} ports { "${k}" }\n`;
  for (const p of diff.mapAdd) s += `add element ${t} ports { "${p.tap}" : jump ${portChain(p.tap)} }\n`;
  for (const c of diff.drop) s += `flush chain ${t} ${c}\ndelete chain ${t} ${c}\n`;
  for (const [name, a] of diff.elemDel) s += `delete element ${t} ${name} { ${a.join(', ')} }\n`;
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
