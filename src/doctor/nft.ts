// Reads `nft -j list ruleset` into the rule model of rules.ts, one Ruleset per table. Pure.
// Understands the expressions ufw, firewalld and hand-written rulesets use for the traffic kvmnet
// cares about: iif/oif names, l4proto, tcp/udp/th ports, ip saddr/daddr, ct state, nfproto; plus
// the statements that decide nothing (counter, log, ...). Anything else makes its rule "unknown".
import { parseCidr, parseIpv4, type Cidr } from '../model/ipv4.js';
import { addrMatch } from './iptables.js';
import { ifaceMatches, not, type Chain, type Match, type Packet, type Rule, type Verdict } from './rules.js';

export interface NftTable {
  family: string;
  name: string;
  chains: Map<string, Chain>;
}

type J = Record<string, unknown>;

const IGNORED_STATEMENTS = new Set(['counter', 'log', 'notrack', 'mangle', 'set', 'quota', 'comment']);

export function parseNftRuleset(doc: unknown): NftTable[] {
  const items = ((doc as { nftables?: unknown[] } | null)?.nftables ?? []) as J[];
  const tables = new Map<string, NftTable>();
  const key = (family: unknown, name: unknown): string => `${String(family)} ${String(name)}`;
  const tableOf = (family: unknown, name: unknown): NftTable => {
    const k = key(family, name);
    let t = tables.get(k);
    if (!t) {
      t = { family: String(family), name: String(name), chains: new Map() };
      tables.set(k, t);
    }
    return t;
  };
  for (const it of items) {
    if (it.table) {
      const t = it.table as J;
      tableOf(t.family, t.name);
    } else if (it.chain) {
      const c = it.chain as J;
      const chain: Chain = { name: String(c.name), rules: [] };
      if (typeof c.hook === 'string') chain.hook = c.hook;
      if (c.policy === 'drop') chain.policy = 'drop';
      else if (typeof c.hook === 'string') chain.policy = 'accept';
      const t = tableOf(c.family, c.table);
      const old = t.chains.get(chain.name);
      if (old) chain.rules = old.rules;
      t.chains.set(chain.name, chain);
    } else if (it.rule) {
      const r = it.rule as J;
      const t = tableOf(r.family, r.table);
      const name = String(r.chain);
      const chain = t.chains.get(name) ?? { name, rules: [] };
      t.chains.set(name, chain);
      chain.rules.push(parseRule((r.expr ?? []) as J[]));
    }
  }
  return [...tables.values()];
}

function parseRule(expr: J[]): Rule {
  const matches: Match[] = [];
  let verdict: Verdict = { kind: 'none' };
  const unknown: Match = () => undefined;
  const words: string[] = [];
  for (const e of expr) {
    const [k] = Object.keys(e);
    if (k === undefined) continue;
    const v = e[k];
    if (k === 'match') {
      const m = parseMatch(v as J);
      matches.push(m.match);
      words.push(m.text);
    } else if (k === 'accept' || k === 'drop' || k === 'reject' || k === 'return') {
      verdict = { kind: k };
      words.push(k);
    } else if (k === 'jump' || k === 'goto') {
      const target = String((v as J).target);
      verdict = { kind: k, target };
      words.push(`${k} ${target}`);
    } else if (IGNORED_STATEMENTS.has(k)) {
      if (k === 'log') words.push('log');
    } else {
      matches.push(unknown);
      words.push(`${k} ...`);
    }
  }
  return { matches, verdict, text: words.join(' ') };
}

/** A packet field the model knows, or undefined when it does not know the field. */
type Getter = (p: Packet) => string | number | undefined | null;

function parseMatch(m: J): { match: Match; text: string } {
  const op = String(m.op);
  const left = m.left as J;
  const right = m.right;
  let get: Getter | undefined;
  let text = '?';
  let isAddr = false;
  let isIface = false;
  if (left.meta) {
    const key = String((left.meta as J).key);
    text = key;
    if (key === 'iifname' || key === 'iif') {
      get = (p) => p.iif;
      isIface = true;
    } else if (key === 'oifname' || key === 'oif') {
      get = (p) => (p.hook === 'forward' ? (p.oif ?? undefined) : undefined);
      isIface = true;
    } else if (key === 'l4proto' || key === 'protocol') get = (p) => p.proto;
    else if (key === 'nfproto') get = () => 'ipv4';
  } else if (left.payload) {
    const pl = left.payload as J;
    const proto = String(pl.protocol);
    const field = String(pl.field);
    text = `${proto} ${field}`;
    if (proto === 'ip6' || proto === 'icmpv6') get = () => null;
    else if (proto === 'ip' && field === 'saddr') {
      get = (p) => p.src;
      isAddr = true;
    } else if (proto === 'ip' && field === 'daddr') {
      get = (p) => p.dst;
      isAddr = true;
    } else if (proto === 'ip' && field === 'protocol') get = (p) => p.proto;
    else if (
      (proto === 'tcp' || proto === 'udp' || proto === 'th') &&
      (field === 'dport' || field === 'sport')
    )
      get = (p) => (proto === 'th' || proto === p.proto ? p[field] : null);
    else if (proto === 'icmp') get = () => null;
  } else if (left.ct) {
    const key = String((left.ct as J).key);
    text = `ct ${key}`;
    if (key === 'state') get = (p) => p.ct;
  }
  const values = valuesOf(right);
  text += ` ${op === '==' || op === 'in' ? '' : op + ' '}${JSON.stringify(right)}`;
  if (!get || values === undefined) return { match: () => undefined, text };
  const g = get;
  const one = (x: string | number | Cidr, have: string | number): boolean | undefined => {
    if (isAddr) {
      const c = typeof x === 'object' ? x : parseCidr(`${x}/32`);
      return addrMatch(c, have as number);
    }
    if (isIface && typeof x === 'string') return ifaceMatches(x, String(have));
    if (typeof x === 'object') return undefined;
    return String(x) === String(have);
  };
  const match: Match = (p) => {
    const have = g(p);
    if (have === null) return false; // e.g. an ip6 match on an IPv4 packet: implicitly false
    if (have === undefined) return undefined;
    let any: boolean | undefined = false;
    for (const x of values) {
      const r = one(x, have);
      if (r === true) return true;
      if (r === undefined) any = undefined;
    }
    return any;
  };
  return { match: op === '!=' ? not(match) : op === '==' || op === 'in' ? match : () => undefined, text };
}

/** Right-hand values: a string/number, an anonymous set, a flag list, a prefix or a range. */
function valuesOf(right: unknown): Array<string | number | Cidr> | undefined {
  if (typeof right === 'string') {
    if (right.startsWith('@')) return undefined; // a named set: contents not modelled
    return [right];
  }
  if (typeof right === 'number') return [right];
  if (Array.isArray(right)) {
    const out: Array<string | number | Cidr> = [];
    for (const r of right) {
      const v = valuesOf(r);
      if (v === undefined) return undefined;
      out.push(...v);
    }
    return out;
  }
  if (right && typeof right === 'object') {
    const o = right as J;
    if ('set' in o) return valuesOf(o.set);
    if ('prefix' in o) {
      const pf = o.prefix as J;
      const c = parseCidr(`${String(pf.addr)}/${String(pf.len)}`);
      return c ? [c] : undefined;
    }
    if ('range' in o) {
      const [a, b] = o.range as [unknown, unknown];
      if (typeof a === 'number' && typeof b === 'number') {
        const out: number[] = [];
        if (b - a > 70000) return undefined;
        for (let i = a; i <= b; i++) out.push(i);
        return out;
      }
      const lo = parseIpv4(String(a));
      const hi = parseIpv4(String(b));
      if (lo === undefined || hi === undefined) return undefined;
      return rangeToCidrs(lo, hi);
    }
  }
  return undefined;
}

function rangeToCidrs(lo: number, hi: number): Cidr[] {
  const out: Cidr[] = [];
  let a = lo;
  while (a <= hi) {
    let prefix = 32;
    while (prefix > 0) {
      const size = 2 ** (32 - prefix + 1);
      if (a % size !== 0 || a + size - 1 > hi) break;
      prefix--;
    }
    out.push({ addr: a, prefix });
    a += 2 ** (32 - prefix);
  }
  return out;
}
