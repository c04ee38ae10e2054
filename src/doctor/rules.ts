// A small firewall model for `kvmnet doctor`: iptables and nftables rulesets become chains of
// rules whose matches can be tried against a sample packet (a guest's DHCP request, a guest's
// connection to the LAN, its reply). Pure: no I/O. It answers "would this chain accept this packet",
// not a full netfilter emulation: a match the model does not understand makes its rule count as
// not matching (so an odd accept rule may yield a drop finding that is not real, never the reverse
// for a rule the model does understand).

/** One sample IPv4 packet as a base chain at `hook` sees it. */
export interface Packet {
  hook: 'forward' | 'input';
  iif: string;
  /** Output interface (forward hook only). */
  oif?: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  /** Addresses as unsigned 32-bit numbers; absent when any address would do. */
  src?: number;
  dst?: number;
  ct: 'new' | 'established';
  /** A bridged frame passed to the IP hooks by br_netfilter. */
  bridged: boolean;
}

/** true: matches; false: cannot match; undefined: the model cannot tell. */
export type Match = (p: Packet) => boolean | undefined;

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'reject' }
  | { kind: 'return' }
  | { kind: 'jump'; target: string }
  | { kind: 'goto'; target: string }
  | { kind: 'none' };

export interface Rule {
  matches: Match[];
  verdict: Verdict;
  /** The rule as its tool prints it, for explanations. */
  text: string;
}

export interface Chain {
  name: string;
  /** Base chains only. */
  hook?: string;
  policy?: 'accept' | 'drop';
  rules: Rule[];
}

/** A set of chains that jump to each other (an iptables table or an nftables table). */
export interface Ruleset {
  /** e.g. "iptables-nft filter", "nft table inet firewalld". */
  label: string;
  chains: Map<string, Chain>;
}

export interface Outcome {
  verdict: 'accept' | 'drop';
  /** The rule (or "policy drop") that decided, as text. */
  by: string;
  /** The chain that decided. */
  chain: string;
}

/** Runs a packet through a base chain (following jumps and gotos) to its verdict. */
export function evaluate(rs: Ruleset, base: Chain, p: Packet): Outcome {
  const r = walk(rs, base, p, 0);
  if (r) return r;
  return base.policy === 'drop'
    ? { verdict: 'drop', by: 'policy drop', chain: base.name }
    : { verdict: 'accept', by: 'policy accept', chain: base.name };
}

/** undefined: fell off the end (or returned) without a verdict. */
function walk(rs: Ruleset, chain: Chain, p: Packet, depth: number): Outcome | undefined {
  if (depth > 32) return undefined;
  for (const rule of chain.rules) {
    if (!rule.matches.every((m) => m(p) === true)) continue;
    const v = rule.verdict;
    switch (v.kind) {
      case 'accept':
        return { verdict: 'accept', by: rule.text, chain: chain.name };
      case 'drop':
      case 'reject':
        return { verdict: 'drop', by: rule.text, chain: chain.name };
      case 'return':
        return undefined;
      case 'jump': {
        const sub = rs.chains.get(v.target);
        const r = sub ? walk(rs, sub, p, depth + 1) : undefined;
        if (r) return r;
        break;
      }
      case 'goto': {
        const sub = rs.chains.get(v.target);
        return sub ? walk(rs, sub, p, depth + 1) : undefined;
      }
      case 'none':
        break;
    }
  }
  return undefined;
}

/** Interface name match with iptables' "+" and nftables' "*" suffix wildcards. */
export function ifaceMatches(pattern: string, name: string | undefined): boolean | undefined {
  if (name === undefined) return undefined;
  if (pattern.endsWith('+') || pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}

export function not(m: Match): Match {
  return (p) => {
    const r = m(p);
    return r === undefined ? undefined : !r;
  };
}
