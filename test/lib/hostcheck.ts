// The host check of every lab (issue 8, isolation): kvmnet never alters what is not its own. A lab
// records the root namespace when it is created and the lab's host namespace once it holds the
// "admin's" own objects (a foreign nftables table, a spare interface with an address and a route);
// at teardown, after `kvmnet down`, both must be exactly as recorded. Recording runs `ip`, `nft`
// and reads /proc/sys; comparing (diffHostState) is pure, so it is unit-tested.
import { readFile } from 'node:fs/promises';
import { must } from './proc.js';

/** What the host check compares: normalised so that only real changes show. */
export interface HostState {
  /** "ifname kind mtu=N mac=M master=B up|down", sorted. */
  links: string[];
  /** "ifname addr/prefix", sorted. */
  addrs: string[];
  /** IPv4 routes of every table, as `ip -4 route show table all` prints them, sorted. */
  routes: string[];
  /** `nft list ruleset` as printed. */
  nft: string;
  /** Sysctl name -> value (root namespace only: kvmnet may raise ip_forward in its own namespace). */
  sysctls: Record<string, string>;
}

/** Sysctls of the root namespace that a network tool is most likely to change by mistake. */
export const ROOT_SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/ipv4/conf/all/forwarding',
  'net/ipv4/conf/all/rp_filter',
  'net/ipv6/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
];

/** The admin's own firewall in the lab's host namespace: an inert table kvmnet must leave alone. */
export const FOREIGN_NFT = `table inet admin {
  set admin_hosts {
    type ipv4_addr
    elements = { 192.0.2.10 }
  }
  chain admin {
    ip saddr @admin_hosts tcp dport 22 accept
  }
}
`;
/** A spare interface of the admin's (one end of a veth pair) with an address and a route (TEST-NET-3). */
export const SPARE_LINK = 'spare0';
export const SPARE_ADDR = '203.0.113.1/24';
export const SPARE_ROUTE = '198.51.100.0/24';

interface IpLink {
  ifname: string;
  mtu?: number;
  address?: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
}

/** Records a namespace (`ns`) or, with null, the root namespace this process runs in. */
export async function recordHostState(ns: string | null, sysctls: string[] = []): Promise<HostState> {
  const ip = (args: string[]): Promise<string> => must('ip', ns === null ? args : ['-n', ns, ...args]);
  const links = (JSON.parse((await ip(['-json', '-d', 'link', 'show'])) || '[]') as IpLink[])
    .map(
      (l) =>
        `${l.ifname} ${l.linkinfo?.info_kind ?? '-'} mtu=${l.mtu ?? '?'} mac=${l.address ?? '-'} master=${l.master ?? '-'} ${(l.flags ?? []).includes('UP') ? 'up' : 'down'}`,
    )
    .sort();
  const addrJson = JSON.parse((await ip(['-json', 'addr', 'show'])) || '[]') as Array<{
    ifname: string;
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  const addrs = addrJson
    .flatMap((l) => (l.addr_info ?? []).map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`))
    .sort();
  const routes = (await ip(['-4', 'route', 'show', 'table', 'all']))
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .sort();
  const nft =
    ns === null
      ? await must('nft', ['list', 'ruleset'])
      : await must('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']);
  const state: HostState = {
    links,
    addrs,
    routes,
    nft,
    sysctls: {},
  };
  for (const s of sysctls) {
    state.sysctls[s.replaceAll('/', '.')] = await readFile(`/proc/sys/${s}`, 'utf8')
      .then((t) => t.trim())
      .catch(() => '(absent)');
  }
  return state;
}

/** Every difference between two recordings, one line each ("+" appeared, "-" vanished); [] when equal. */
export function diffHostState(before: HostState, after: HostState): string[] {
  const out: string[] = [];
  const lists: Array<[string, string[], string[]]> = [
    ['link', before.links, after.links],
    ['address', before.addrs, after.addrs],
    ['route', before.routes, after.routes],
  ];
  for (const [what, a, b] of lists) {
    const sa = new Set(a);
    const sb = new Set(b);
    for (const x of a) if (!sb.has(x)) out.push(`- ${what} ${x}`);
    for (const x of b) if (!sa.has(x)) out.push(`+ ${what} ${x}`);
  }
  if (before.nft !== after.nft) {
    const a = before.nft.split('\n');
    const b = after.nft.split('\n');
    const sa = new Set(a);
    const sb = new Set(b);
    const lines = [
      ...a.filter((x) => !sb.has(x)).map((x) => `- nft ${x.trim()}`),
      ...b.filter((x) => !sa.has(x)).map((x) => `+ nft ${x.trim()}`),
    ];
    // Same lines in another order (a rule moved): still a change.
    out.push(...(lines.length ? lines : ['~ nft ruleset reordered']));
  }
  for (const k of new Set([...Object.keys(before.sysctls), ...Object.keys(after.sysctls)])) {
    const a = before.sysctls[k];
    const b = after.sysctls[k];
    if (a !== b) out.push(`~ sysctl ${k} ${a ?? '(unrecorded)'} -> ${b ?? '(unrecorded)'}`);
  }
  return out;
}
