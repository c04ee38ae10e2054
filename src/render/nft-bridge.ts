// Renders kvmnet's anti-spoofing table (`table bridge kvmnet`) as `nft -f` text, and the dnsmasq
// lease hook that keeps its lease sets current. Pure. Separate from `table inet kvmnet` (render/nft.ts):
// it filters frames as they enter the bridge from a guest's tap, before any IP hook sees them.
//
// Layout (like libvirt's clean-traffic nwfilter): a base chain at the bridge prerouting hook looks
// up the ingress port in the verdict map `ports` and jumps to the port's chain `port_<tap>`. A port's
// chain drops frames whose source MAC is not the guest's, ARP whose sender MAC/IP is not the guest's,
// IPv4 from an address not the guest's (once it has a reservation or a lease; DHCP from 0.0.0.0 is
// always allowed), IPv6 other than link-local on kvmnet's IPv4 networks, and every other ethertype.
// A port without a reservation is pinned by its DHCP lease: the sets lease_ip (MAC . IP) and
// lease_mac (MAC) hold the leases, filled by kvmnet from the lease files whenever it rebuilds the
// table and by dnsmasq's dhcp-script (renderLeaseHook) when a lease is added, renewed, released or
// expires. (No nft timeouts: dnsmasq reports expiry itself, and the listing stays stable.)
//
// The table is rebuilt as a whole (in one transaction) when its rules differ; every rule carries the
// comment kvmnet#TAG, TAG a hash of the rules, so drift is seen by reading the comments back.
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
   * Present on networks kvmnet addresses (not bridged): the gateway and the other ports'
   * reservations, which an unpinned guest must not claim; IPv6 is then link-local only.
   */
  l3?: { gateway: string; protected: string[] };
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
    .filter((p) => TAP_RE.test(p.tap) && MAC_RE.test(p.mac) && (p.ip === undefined || IP_RE.test(p.ip)))
    .sort((a, b) => a.tap.localeCompare(b.tap, 'en', { numeric: true }));
}

export function portChain(tap: string): string {
  return `port_${tap.replace(/[.-]/g, '_')}`;
}

/** The rules of one port's chain, without comments. */
export function portRules(p: BridgePort): string[] {
  const m = p.mac;
  const chaddr = `0x${m.replace(/:/g, '')}`;
  const others = p.l3 ? [p.l3.gateway, ...p.l3.protected.filter((x) => x !== p.ip)] : [];
  const claim = others.length === 1 ? (others[0] ?? '') : `{ ${others.join(', ')} }`;
  const r: string[] = [`ether saddr != ${m} counter drop`];
  // ARP: sender MAC is the guest's; sender IP its own (0.0.0.0 for a probe).
  r.push(`ether type arp arp saddr ether != ${m} counter drop`);
  r.push('ether type arp arp saddr ip 0.0.0.0 accept');
  if (others.length) r.push(`ether type arp arp saddr ip ${claim} counter drop`);
  if (p.ip !== undefined) r.push(`ether type arp arp saddr ip != ${p.ip} counter drop`);
  else {
    r.push('ether type arp ether saddr . arp saddr ip @lease_ip accept');
    r.push('ether type arp ether saddr @lease_mac counter drop');
  }
  r.push('ether type arp accept');
  // IPv4: DHCP requests carry the guest's MAC as client hardware address (bytes 28-33 of BOOTP).
  r.push(`ether type ip udp sport 68 udp dport 67 @th,288,48 != ${chaddr} counter drop`);
  r.push('ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept');
  if (others.length) r.push(`ether type ip ip saddr ${claim} counter drop`);
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

/** The hash every rule's comment carries: equal tags, equal rules. */
export function bridgeTag(ports: BridgePort[]): string {
  const text = checkablePorts(ports)
    .map((p) => `${p.tap}|${portRules(p).join('\n')}`)
    .join('\n\n');
  return createHash('sha256').update(`${PREROUTING}\n${text}`).digest('hex').slice(0, 12);
}

/** How many rules the table holds for these ports (for drift checks). */
export function bridgeRuleCount(ports: BridgePort[]): number {
  return 1 + checkablePorts(ports).reduce((n, p) => n + portRules(p).length, 0);
}

/**
 * The transaction that makes the table exactly this (removes it when no port is checked). Leases
 * of MACs that no checked port has are left out.
 */
export function renderBridgeTable(ports: BridgePort[], leases: BridgeLease[]): string {
  const list = checkablePorts(ports);
  const head = `table ${BRIDGE_TABLE}\ndelete table ${BRIDGE_TABLE}\n`;
  if (list.length === 0) return head;
  const c = ` comment "kvmnet#${bridgeTag(list)}"`;
  const out: string[] = [
    `table ${BRIDGE_TABLE} {`,
    '\tset lease_ip {\n\t\ttype ether_addr . ipv4_addr\n\t}',
    '\tset lease_mac {\n\t\ttype ether_addr\n\t}',
    `\tmap ports {\n\t\ttype ifname : verdict\n\t\telements = { ${list
      .map((p) => `"${p.tap}" : jump ${portChain(p.tap)}`)
      .join(',\n\t\t\t     ')} }\n\t}`,
    `\tchain prerouting {\n\t\ttype filter hook prerouting priority filter; policy accept;\n\t\t${PREROUTING}${c}\n\t}`,
  ];
  for (const p of list) {
    out.push(
      `\tchain ${portChain(p.tap)} {\n${portRules(p)
        .map((r) => `\t\t${r}${c}\n`)
        .join('')}\t}`,
    );
  }
  let text = head + out.join('\n') + '\n}\n';
  const macs = new Set(list.filter((p) => p.ip === undefined).map((p) => p.mac));
  const ls = leases
    .filter((l) => macs.has(l.mac) && IP_RE.test(l.ip))
    .sort((a, b) => a.mac.localeCompare(b.mac));
  if (ls.length) {
    text += `add element ${BRIDGE_TABLE} lease_ip { ${ls.map((l) => `${l.mac} . ${l.ip}`).join(', ')} }\n`;
    text += `add element ${BRIDGE_TABLE} lease_mac { ${[...new Set(ls.map((l) => l.mac))].join(', ')} }\n`;
  }
  return text;
}

export interface BridgeObserved {
  table: boolean;
  /** Rule comments, in any order. */
  comments: Array<string | undefined>;
  /** Keys of the ports map. */
  ports: string[];
}

/** Reads `nft -j list table bridge kvmnet` (null: no table). */
export function parseBridgeTable(json: unknown): BridgeObserved {
  const obs: BridgeObserved = { table: false, comments: [], ports: [] };
  if (json === null) return obs;
  obs.table = true;
  const items = (json as { nftables?: Array<Record<string, Record<string, unknown>>> }).nftables ?? [];
  for (const it of items) {
    if (it.rule) obs.comments.push(typeof it.rule.comment === 'string' ? it.rule.comment : undefined);
    if (it.map && it.map.name === 'ports') {
      for (const e of (it.map.elem as unknown[] | undefined) ?? []) {
        if (Array.isArray(e) && typeof e[0] === 'string') obs.ports.push(e[0]);
      }
    }
  }
  return obs;
}

/** What differs between the table and these ports (empty: nothing). */
export function bridgeDrift(ports: BridgePort[], obs: BridgeObserved): string[] {
  const list = checkablePorts(ports);
  if (list.length === 0) return obs.table ? ['table bridge kvmnet is no longer needed'] : [];
  if (!obs.table) return ['table bridge kvmnet is missing'];
  const tag = `kvmnet#${bridgeTag(list)}`;
  const out: string[] = [];
  const want = list.map((p) => p.tap).sort();
  const got = [...obs.ports].sort();
  if (want.join(',') !== got.join(','))
    out.push(`table bridge kvmnet checks ports ${got.join(', ') || 'none'}, expected ${want.join(', ')}`);
  if (obs.comments.length !== bridgeRuleCount(list) || obs.comments.some((x) => x !== tag))
    out.push(
      `table bridge kvmnet has ${obs.comments.length} rules not matching the ${bridgeRuleCount(list)} expected`,
    );
  return out;
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
