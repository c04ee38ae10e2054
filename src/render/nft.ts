// Renders kvmnet's nftables table (`table inet kvmnet`) as `nft -f` transaction text. Pure.
//
// Layout: a fixed skeleton of base chains that dispatch through verdict maps keyed by bridge name
// (NAT too: postrouting dispatches on the ingress bridge of forwarded packets), and per network a few regular chains (net_<name>_in/out/host/nat).
// Isolation: forwarded traffic from one kvmnet bridge to another goes through chain `between`
// (jumped to from the receiving network's in chain, before anything else accepts), which drops it
// unless the pair is in `net_peers` (each bridge with itself, peered routed networks both ways) or
// it is a port forward.
// Per forwarded packet (docs/architecture.md, "The per-packet path"): two map lookups whatever the
// connection's state. Out of a network: fwd_in (miss), fwd_out, the network's source check (and
// flow offload). Into a network: fwd_in, then net_bridges (isolation), then the established check.
// There is no blanket `ct state established accept` up front: conntrack does not look at
// interfaces, so it would let a guest's spoofed packets that match someone else's connection out,
// replies in through another interface than the forward device, and old connections across a
// network that is isolated now.
// Starting or stopping one network touches only its chains and its map elements, in one
// transaction; the skeleton is rewritten only when it differs from what is rendered here.
import { createHash } from 'node:crypto';
import type { DnatEntry } from '../model/forward.js';

export const TABLE = 'inet kvmnet';

/** What a running network needs from the firewall; the driver decides, the backend renders. */
export interface FirewallIntent {
  network: string;
  bridge: string;
  subnet: string;
  /**
   * nat: masquerade out, only replies (and DNAT) in. routed: both ways, no NAT. none: isolated.
   * open: no rules and no elements at all (libvirt's mode 'open'): the host's own firewall decides.
   */
  forward: 'nat' | 'routed' | 'none' | 'open';
  /** Fill DHCP reply checksums (some old guests drop replies with offloaded checksums). */
  dhcpChecksum: boolean;
  /** The bridge address: never captured by port forwards without a host address. */
  gateway: string;
  /** Port forwards of the network, one entry per port. */
  dnat: DnatEntry[];
  /**
   * nat and routed: the one host interface the network's traffic may leave through (libvirt's
   * `<forward dev>`): forwarding out and masquerade match `oifname DEV`, replies (and, routed, any
   * traffic) in match `iifname DEV`. Absent: any interface.
   */
  forwardDev?: string;
  /**
   * routed only: bridges of the routed networks this one is peered with (`peers`, either side
   * suffices; each pair is rendered by one of the two). Traffic between any other two kvmnet
   * bridges is dropped (chain `between`).
   */
  peerBridges?: string[];
  /**
   * nat: offload established TCP/UDP flows to the network's flowtable (`net_<name>_ft`), which
   * hooks ingress of these devices (the driver lists the bridge). Absent:
   * no flowtable (--no-offload, or the kernel has no flowtables: see withoutOffload).
   */
  offload?: { devices: string[] };
}

/** The intent as it can be applied on a kernel with or without nftables flowtables. */
export function withoutOffload(intent: FirewallIntent, flowtables: boolean): FirewallIntent {
  if (flowtables || intent.offload === undefined) return intent;
  const rest = { ...intent };
  delete rest.offload;
  return rest;
}

export interface FlowtableSpec {
  name: string;
  devices: string[];
}

export interface ChainSpec {
  name: string;
  rules: string[];
}

export interface ElementSpec {
  map: string;
  /** The key as nft lists it, unquoted: "virbr0", "tcp . 8080", "192.168.100.239 . udp . 53". */
  key: string;
  /** Verdict target chain for verdict maps. */
  jump?: string;
  /** Data for data maps: "192.168.122.50 . 80". Neither jump nor value: a set element. */
  value?: string;
}

/** Maps and sets keyed by interface name: their keys are quoted in nft syntax. */
const IFNAME_KEYED = new Set([
  'fwd_in',
  'fwd_out',
  'host_in',
  'nat_out',
  'hairpin',
  'dhcp_bridges',
  'net_bridges',
  'net_peers',
]);

/** What an element maps to, as observation reports it (jump target or data). */
export function elementData(e: ElementSpec): string | undefined {
  return e.jump ?? e.value;
}

export interface NetworkFragment {
  network: string;
  chains: ChainSpec[];
  elements: ElementSpec[];
  /** Flowtables the network's chains add flows to (written before, removed after the chains). */
  flowtables: FlowtableSpec[];
  /** Tag put into each rule's comment; equal tags mean equal rules. */
  tag: string;
}

export interface BaseChain {
  name: string;
  /** Empty for a regular chain of the skeleton. */
  decl: string;
  /** How `nft -j` reports the declaration, for drift checks (absent for a regular chain). */
  json?: { type: string; hook: string; prio: number; policy: string };
  rules: string[];
}

/** Port forwards: host-local destinations (loopback excepted), to the forward maps. */
const TO_FORWARDS = 'fib daddr type local ip daddr != 127.0.0.0/8 jump dnat_fwd';

const BASE_CHAINS: BaseChain[] = [
  {
    name: 'dnat_fwd',
    decl: '',
    // Regular chain first: the base chains below jump to it. Forwards bound to one host address first, then those on every address but the gateways.
    rules: [
      'dnat ip to ip daddr . meta l4proto . th dport map @fwd_addr',
      'ip daddr != @gateways dnat ip to meta l4proto . th dport map @fwd_any',
    ],
  },
  {
    name: 'between',
    decl: '',
    // Isolation: from one kvmnet bridge to another only within a network (a bridge is paired with
    // itself) or between peered routed networks; port forwards are published on the host's
    // addresses, so guests of other networks reach them as the LAN does.
    rules: ['iifname . oifname @net_peers return', 'ct status dnat return', 'drop'],
  },
  {
    name: 'forward',
    decl: 'type filter hook forward priority filter; policy accept;',
    json: { type: 'filter', hook: 'forward', prio: 0, policy: 'accept' },
    // Traffic into a network first, so a network's "in" rules (isolation from other networks
    // first) also guard it from the outside and from other networks; then traffic out of a network.
    rules: ['oifname vmap @fwd_in', 'iifname vmap @fwd_out'],
  },
  {
    name: 'input',
    decl: 'type filter hook input priority filter; policy accept;',
    json: { type: 'filter', hook: 'input', prio: 0, policy: 'accept' },
    rules: ['iifname vmap @host_in'],
  },
  {
    name: 'postrouting',
    decl: 'type nat hook postrouting priority srcnat; policy accept;',
    json: { type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' },
    // Hairpin by output bridge: with br_netfilter loaded, a DNAT back onto the same bridge is
    // bridged, and postrouting then has no input interface. Masquerade out by input bridge.
    rules: ['oifname vmap @hairpin', 'iifname vmap @nat_out'],
  },
  {
    name: 'prerouting',
    decl: 'type nat hook prerouting priority dstnat; policy accept;',
    json: { type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' },
    rules: [TO_FORWARDS],
  },
  // Connections from the host itself to one of its addresses.
  {
    name: 'output',
    decl: 'type nat hook output priority -100; policy accept;',
    json: { type: 'nat', hook: 'output', prio: -100, policy: 'accept' },
    rules: [TO_FORWARDS],
  },
  // DHCP replies are dnsmasq's, so the host's own output: hooked there, forwarded packets never
  // pass this chain; the port comparison first, so the host's other packets skip the set lookup.
  {
    name: 'mangle_output',
    decl: 'type filter hook output priority mangle; policy accept;',
    json: { type: 'filter', hook: 'output', prio: -150, policy: 'accept' },
    rules: ['udp dport 68 oifname @dhcp_bridges udp checksum set 0'],
  },
];

/**
 * Base chains of earlier skeletons that this one no longer has: deleted when the skeleton is
 * rewritten (mangle_postrouting: every forwarded packet passed it for a DHCP-only rule).
 */
export const RETIRED_CHAINS = ['mangle_postrouting'];

export const BASE_MAPS: Array<{ name: string; decl: string }> = [
  { name: 'fwd_in', decl: 'type ifname : verdict;' },
  { name: 'fwd_out', decl: 'type ifname : verdict;' },
  { name: 'host_in', decl: 'type ifname : verdict;' },
  { name: 'nat_out', decl: 'type ifname : verdict;' },
  { name: 'hairpin', decl: 'type ifname : verdict;' },
  { name: 'fwd_addr', decl: 'type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;' },
  { name: 'fwd_any', decl: 'type inet_proto . inet_service : ipv4_addr . inet_service;' },
];
export const BASE_SETS: Array<{ name: string; decl: string }> = [
  { name: 'dhcp_bridges', decl: 'type ifname;' },
  { name: 'gateways', decl: 'type ipv4_addr;' },
  { name: 'net_bridges', decl: 'type ifname;' },
  { name: 'net_peers', decl: 'type ifname . ifname;' },
];

function tagOf(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

export function skeletonTag(): string {
  return tagOf(JSON.stringify([BASE_CHAINS, BASE_MAPS, BASE_SETS]));
}

/** The skeleton's base chains, as the backend expects to observe them. */
export function skeletonChains(): BaseChain[] {
  return BASE_CHAINS;
}

/** Creates the table if missing and (re)writes the skeleton. Idempotent; keeps network chains and elements. */
export function renderSkeleton(): string {
  const tag = skeletonTag();
  const out = [`add table ${TABLE}`];
  for (const m of BASE_MAPS) out.push(`add map ${TABLE} ${m.name} { ${m.decl} }`);
  for (const s of BASE_SETS) out.push(`add set ${TABLE} ${s.name} { ${s.decl} }`);
  for (const c of BASE_CHAINS) {
    out.push(
      c.decl ? `add chain ${TABLE} ${c.name} { ${c.decl} }` : `add chain ${TABLE} ${c.name}`,
      `flush chain ${TABLE} ${c.name}`,
    );
    for (const r of c.rules) out.push(`add rule ${TABLE} ${c.name} ${r} comment "kvmnet#${tag}"`);
  }
  return out.join('\n') + '\n';
}

export function chainNames(network: string): {
  in: string;
  out: string;
  host: string;
  nat: string;
  hairpin: string;
  ft: string;
} {
  return {
    in: `net_${network}_in`,
    out: `net_${network}_out`,
    host: `net_${network}_host`,
    nat: `net_${network}_nat`,
    hairpin: `net_${network}_hairpin`,
    ft: `net_${network}_ft`,
  };
}

/** Port forwards as elements of the forward maps (one per port). */
export function dnatElements(entries: DnatEntry[]): ElementSpec[] {
  return entries.map((d) => {
    const value = `${d.targetIp} . ${d.targetPort}`;
    return d.hostIp === undefined
      ? { map: 'fwd_any', key: `${d.proto} . ${d.port}`, value }
      : { map: 'fwd_addr', key: `${d.hostIp} . ${d.proto} . ${d.port}`, value };
  });
}

export function buildFragment(intent: FirewallIntent): NetworkFragment {
  if (intent.forward === 'open')
    return { network: intent.network, chains: [], elements: [], flowtables: [], tag: tagOf('[]') };
  const n = chainNames(intent.network);
  const br = JSON.stringify(intent.bridge);
  const s = intent.subnet;
  const chains: ChainSpec[] = [];
  // Within the network, then isolation from the other networks' bridges, whatever the state: an
  // established or related packet from another bridge is dropped unless the pair may talk.
  const inRules = [`iifname ${br} accept`, 'iifname @net_bridges jump between'];
  const outRules: string[] = [];
  // libvirt's <forward dev>: out only through that interface, replies only from it.
  const dev = intent.forwardDev === undefined ? undefined : JSON.stringify(intent.forwardDev);
  const oif = dev === undefined ? '' : ` oifname ${dev}`;
  const iif = dev === undefined ? '' : `iifname ${dev} `;
  switch (intent.forward) {
    case 'nat':
      inRules.push(
        `${iif}ip daddr ${s} ct state established,related accept`,
        // Port forwards stay reachable from anywhere: they are explicit (libvirt has none).
        `ip daddr ${s} ct status dnat accept`,
        'reject',
      );
      outRules.push(
        // Offload: an established flow's later packets (both ways) skip the forward path.
        ...(intent.offload ? [`meta l4proto { tcp, udp } ct state established flow add @${n.ft}`] : []),
        `ip saddr ${s}${oif} accept`,
        'reject',
      );
      break;
    case 'routed':
      inRules.push(`${iif}ip daddr ${s} accept`, 'reject');
      outRules.push(`ip saddr ${s}${oif} accept`, 'reject');
      break;
    case 'none':
      inRules.push('reject');
      outRules.push('reject');
      break;
  }
  chains.push({ name: n.in, rules: inRules }, { name: n.out, rules: outRules });
  chains.push({ name: n.host, rules: ['udp dport { 53, 67 } accept', 'tcp dport 53 accept'] });
  const elements: ElementSpec[] = [
    { map: 'net_bridges', key: intent.bridge },
    { map: 'net_peers', key: `${intent.bridge} . ${intent.bridge}` },
  ];
  for (const p of intent.forward === 'routed' ? (intent.peerBridges ?? []) : []) {
    elements.push(
      { map: 'net_peers', key: `${intent.bridge} . ${p}` },
      { map: 'net_peers', key: `${p} . ${intent.bridge}` },
    );
  }
  elements.push(
    { map: 'fwd_in', key: intent.bridge, jump: n.in },
    { map: 'fwd_out', key: intent.bridge, jump: n.out },
    { map: 'host_in', key: intent.bridge, jump: n.host },
  );
  if (intent.forward !== 'none') {
    // Hairpin: a guest reaching a forward of its own network gets the reply through the host.
    chains.push({ name: n.hairpin, rules: [`ip saddr ${s} ip daddr ${s} ct status dnat masquerade`] });
    elements.push({ map: 'hairpin', key: intent.bridge, jump: n.hairpin });
  }
  if (intent.forward === 'nat') {
    chains.push({
      name: n.nat,
      rules: [
        // Local multicast and broadcast keep their source (libvirt's rules do the same).
        'ip daddr 224.0.0.0/24 return',
        'ip daddr 255.255.255.255 return',
        `ip daddr ${s} return`,
        `ip saddr ${s}${oif} meta l4proto { tcp, udp } masquerade to :1024-65535`,
        `ip saddr ${s}${oif} masquerade`,
      ],
    });
    elements.push({ map: 'nat_out', key: intent.bridge, jump: n.nat });
  }
  elements.push({ map: 'gateways', key: intent.gateway });
  elements.push(...dnatElements(intent.dnat));
  if (intent.dhcpChecksum) elements.push({ map: 'dhcp_bridges', key: intent.bridge });
  // The tag covers the rules only: elements (forwards above all) are compared one by one, so adding
  // the 1,000th forward is one element, not a rewrite.
  const flowtables: FlowtableSpec[] =
    intent.forward === 'nat' && intent.offload ? [{ name: n.ft, devices: intent.offload.devices }] : [];
  const tag = tagOf(JSON.stringify(flowtables.length ? [chains, flowtables] : chains));
  return { network: intent.network, chains, elements, flowtables, tag };
}

function keyText(e: ElementSpec): string {
  if (!IFNAME_KEYED.has(e.map)) return e.key;
  // net_peers: "virbr0 . virbr1", each name quoted.
  return e.key
    .split(' . ')
    .map((k) => JSON.stringify(k))
    .join(' . ');
}

function elementText(e: ElementSpec): string {
  if (e.jump !== undefined) return `${keyText(e)} : jump ${e.jump}`;
  if (e.value !== undefined) return `${keyText(e)} : ${e.value}`;
  return keyText(e);
}

/** Adds elements (one transaction line each). */
export function renderAddElements(elements: ElementSpec[]): string {
  return elements.map((e) => `add element ${TABLE} ${e.map} { ${elementText(e)} }\n`).join('');
}

/** Writes (or rewrites) one network's chains. */
export function renderChains(f: NetworkFragment): string {
  const out: string[] = [];
  for (const t of f.flowtables) {
    const devs = t.devices.map((d) => JSON.stringify(d)).join(', ');
    out.push(`add flowtable ${TABLE} ${t.name} { hook ingress priority filter; devices = { ${devs} }; }`);
  }
  for (const c of f.chains) {
    out.push(`add chain ${TABLE} ${c.name}`, `flush chain ${TABLE} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${TABLE} ${c.name} ${r} comment "${f.network}#${f.tag}"`);
  }
  return out.join('\n') + '\n';
}

/** Writes one network's chains and elements (a fresh start). */
export function renderFragment(f: NetworkFragment): string {
  return renderChains(f) + renderAddElements(f.elements);
}

/** Removes one network's elements (only those present) and chains (elements first: they reference the chains). */
export function renderRemoval(elements: ElementSpec[], chains: string[], flowtables: string[] = []): string {
  const out: string[] = [];
  for (const e of elements) out.push(`delete element ${TABLE} ${e.map} { ${keyText(e)} }`);
  for (const c of chains) out.push(`flush chain ${TABLE} ${c}`, `delete chain ${TABLE} ${c}`);
  // After the chains: a flowtable cannot go while a rule still adds flows to it.
  for (const t of flowtables) out.push(`delete flowtable ${TABLE} ${t}`);
  return out.join('\n') + (out.length ? '\n' : '');
}

export function renderDeleteTable(): string {
  return `delete table ${TABLE}\n`;
}
