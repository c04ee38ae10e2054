// Renders kvmnet's nftables table (`table inet kvmnet`) as `nft -f` transaction text. Pure.
//
// Layout: a fixed skeleton of base chains that dispatch through verdict maps keyed by bridge name
// (NAT too: postrouting dispatches on the ingress bridge of forwarded packets), and per network a few regular chains (net_<name>_in/out/host/nat).
// Starting or stopping one network touches only its chains and its map elements, in one
// transaction; the skeleton is rewritten only when it differs from what is rendered here.
import { createHash } from 'node:crypto';

export const TABLE = 'inet kvmnet';

/** What a running network needs from the firewall; the driver decides, the backend renders. */
export interface FirewallIntent {
  network: string;
  bridge: string;
  subnet: string;
  /** nat: masquerade out, only replies (and DNAT) in. routed: both ways, no NAT. none: isolated. */
  forward: 'nat' | 'routed' | 'none';
  /** Fill DHCP reply checksums (some old guests drop replies with offloaded checksums). */
  dhcpChecksum: boolean;
}

export interface ChainSpec {
  name: string;
  rules: string[];
}

export interface ElementSpec {
  map: string;
  key: string;
  /** Verdict target chain for maps; undefined for plain sets. */
  jump?: string;
}

export interface NetworkFragment {
  network: string;
  chains: ChainSpec[];
  elements: ElementSpec[];
  /** Tag put into each rule's comment; equal tags mean equal rules. */
  tag: string;
}

export interface BaseChain {
  name: string;
  decl: string;
  /** How `nft -j` reports the declaration, for drift checks. */
  json: { type: string; hook: string; prio: number; policy: string };
  rules: string[];
}

const BASE_CHAINS: BaseChain[] = [
  {
    name: 'forward',
    decl: 'type filter hook forward priority filter; policy accept;',
    json: { type: 'filter', hook: 'forward', prio: 0, policy: 'accept' },
    // Traffic into a network is judged first, so a network's "in" rules also guard it from
    // other networks' guests; then traffic out of a network.
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
    rules: ['iifname vmap @nat_out'],
  },
  {
    name: 'mangle_postrouting',
    decl: 'type filter hook postrouting priority mangle; policy accept;',
    json: { type: 'filter', hook: 'postrouting', prio: -150, policy: 'accept' },
    rules: ['oifname @dhcp_bridges udp dport 68 udp checksum set 0'],
  },
];

export const BASE_MAPS: Array<{ name: string; decl: string }> = [
  { name: 'fwd_in', decl: 'type ifname : verdict;' },
  { name: 'fwd_out', decl: 'type ifname : verdict;' },
  { name: 'host_in', decl: 'type ifname : verdict;' },
  { name: 'nat_out', decl: 'type ifname : verdict;' },
];
export const BASE_SETS: Array<{ name: string; decl: string }> = [
  { name: 'dhcp_bridges', decl: 'type ifname;' },
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
    out.push(`add chain ${TABLE} ${c.name} { ${c.decl} }`, `flush chain ${TABLE} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${TABLE} ${c.name} ${r} comment "kvmnet#${tag}"`);
  }
  return out.join('\n') + '\n';
}

export function chainNames(network: string): { in: string; out: string; host: string; nat: string } {
  return {
    in: `net_${network}_in`,
    out: `net_${network}_out`,
    host: `net_${network}_host`,
    nat: `net_${network}_nat`,
  };
}

export function buildFragment(intent: FirewallIntent): NetworkFragment {
  const n = chainNames(intent.network);
  const br = JSON.stringify(intent.bridge);
  const s = intent.subnet;
  const chains: ChainSpec[] = [];
  const inRules = [`iifname ${br} accept`];
  const outRules: string[] = [];
  switch (intent.forward) {
    case 'nat':
      inRules.push(
        `ip daddr ${s} ct state established,related accept`,
        `ip daddr ${s} ct status dnat accept`,
        'reject',
      );
      outRules.push(`ip saddr ${s} accept`, 'reject');
      break;
    case 'routed':
      inRules.push(`ip daddr ${s} accept`, 'reject');
      outRules.push(`ip saddr ${s} accept`, 'reject');
      break;
    case 'none':
      inRules.push('reject');
      outRules.push('reject');
      break;
  }
  chains.push({ name: n.in, rules: inRules }, { name: n.out, rules: outRules });
  chains.push({ name: n.host, rules: ['udp dport { 53, 67 } accept', 'tcp dport 53 accept'] });
  const elements: ElementSpec[] = [
    { map: 'fwd_in', key: intent.bridge, jump: n.in },
    { map: 'fwd_out', key: intent.bridge, jump: n.out },
    { map: 'host_in', key: intent.bridge, jump: n.host },
  ];
  if (intent.forward === 'nat') {
    chains.push({
      name: n.nat,
      rules: [
        // Local multicast and broadcast keep their source (libvirt's rules do the same).
        'ip daddr 224.0.0.0/24 return',
        'ip daddr 255.255.255.255 return',
        `ip daddr ${s} return`,
        `ip saddr ${s} meta l4proto { tcp, udp } masquerade to :1024-65535`,
        `ip saddr ${s} masquerade`,
      ],
    });
    elements.push({ map: 'nat_out', key: intent.bridge, jump: n.nat });
  }
  if (intent.dhcpChecksum) elements.push({ map: 'dhcp_bridges', key: intent.bridge });
  const tag = tagOf(JSON.stringify({ chains, elements }));
  return { network: intent.network, chains, elements, tag };
}

function elementText(e: ElementSpec): string {
  const key = JSON.stringify(e.key);
  return e.jump === undefined ? key : `${key} : jump ${e.jump}`;
}

/** Writes (or rewrites) one network's chains and elements. */
export function renderFragment(f: NetworkFragment): string {
  const out: string[] = [];
  for (const c of f.chains) {
    out.push(`add chain ${TABLE} ${c.name}`, `flush chain ${TABLE} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${TABLE} ${c.name} ${r} comment "${f.network}#${f.tag}"`);
  }
  for (const e of f.elements) out.push(`add element ${TABLE} ${e.map} { ${elementText(e)} }`);
  return out.join('\n') + '\n';
}

/** Removes one network's elements (only those present) and chains (elements first: they reference the chains). */
export function renderRemoval(elements: ElementSpec[], chains: string[]): string {
  const out: string[] = [];
  for (const e of elements)
    out.push(
      `delete element ${TABLE} ${e.map} { ${e.jump === undefined ? elementText(e) : elementText({ map: e.map, key: e.key })} }`,
    );
  for (const c of chains) out.push(`flush chain ${TABLE} ${c}`, `delete chain ${TABLE} ${c}`);
  return out.join('\n') + (out.length ? '\n' : '');
}

export function renderDeleteTable(): string {
  return `delete table ${TABLE}\n`;
}
