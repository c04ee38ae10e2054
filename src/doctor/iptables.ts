// Reads the filter table of `iptables-save` output (iptables-nft-save or iptables-legacy-save) into
// the rule model of rules.ts. Pure. Understands the matches Docker, ufw and libvirt use (-i, -o,
// -p, -s, -d, --dport(s), --sport(s), conntrack/state, physdev, comment); any other match makes
// its rule "unknown" (it never matches in the model).
import { contains, parseCidr, type Cidr } from '../model/ipv4.js';
import {
  ifaceMatches,
  not,
  type Chain,
  type Match,
  type Packet,
  type Rule,
  type Ruleset,
  type Verdict,
} from './rules.js';

const BUILTIN_HOOKS: Record<string, string> = {
  INPUT: 'input',
  FORWARD: 'forward',
  OUTPUT: 'output',
};

/** The `*filter` table of an iptables-save dump, or null when the dump has none. */
export function parseIptablesSave(text: string, label: string): Ruleset | null {
  const chains = new Map<string, Chain>();
  let inFilter = false;
  let seen = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      inFilter = line === '*filter';
      if (inFilter) seen = true;
      continue;
    }
    if (!inFilter) continue;
    if (line === 'COMMIT') {
      inFilter = false;
      continue;
    }
    if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(/\s+/);
      const c: Chain = { name, rules: [] };
      const hook = BUILTIN_HOOKS[name];
      if (hook !== undefined) c.hook = hook;
      if (policy === 'DROP') c.policy = 'drop';
      else if (policy === 'ACCEPT') c.policy = 'accept';
      chains.set(name, c);
      continue;
    }
    if (line.startsWith('-A ')) {
      const words = tokenize(line);
      const chainName = words[1] ?? '';
      const chain = chains.get(chainName) ?? { name: chainName, rules: [] };
      chains.set(chainName, chain);
      chain.rules.push(parseRule(words.slice(2), line));
    }
  }
  return seen ? { label, chains } : null;
}

/** Shell-like words: iptables-save quotes comments with double quotes. */
function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re))
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  return out;
}

function parseRule(w: string[], text: string): Rule {
  const matches: Match[] = [];
  let verdict: Verdict = { kind: 'none' };
  let negate = false;
  const unknown: Match = () => undefined;
  const add = (m: Match): void => {
    matches.push(negate ? not(m) : m);
    negate = false;
  };
  let proto: string | undefined;
  for (let i = 0; i < w.length; i++) {
    const t = w[i] ?? '';
    const arg = (): string => w[++i] ?? '';
    switch (t) {
      case '!':
        negate = true;
        break;
      case '-i':
      case '--in-interface': {
        const v = arg();
        add((p) => ifaceMatches(v, p.iif));
        break;
      }
      case '-o':
      case '--out-interface': {
        const v = arg();
        add((p) => (p.hook === 'forward' ? ifaceMatches(v, p.oif) : undefined));
        break;
      }
      case '-p':
      case '--protocol': {
        const v = arg();
        proto = v;
        add((p) => (v === 'all' ? true : v === 'tcp' || v === 'udp' ? p.proto === v : false));
        break;
      }
      case '-s':
      case '--source': {
        const c = parseAddr(arg());
        add((p) => addrMatch(c, p.src));
        break;
      }
      case '-d':
      case '--destination': {
        const c = parseAddr(arg());
        add((p) => addrMatch(c, p.dst));
        break;
      }
      case '--dport':
      case '--destination-port':
      case '--dports':
      case '--destination-ports': {
        const ports = parsePorts(arg());
        const pr = proto;
        add((p) => (pr === p.proto ? ports(p.dport) : false));
        break;
      }
      case '--sport':
      case '--source-port':
      case '--sports':
      case '--source-ports': {
        const ports = parsePorts(arg());
        const pr = proto;
        add((p) => (pr === p.proto ? ports(p.sport) : false));
        break;
      }
      case '--ctstate':
      case '--state': {
        const states = arg().toLowerCase().split(',');
        add((p) => states.includes(p.ct));
        break;
      }
      case '--dst-type': {
        const types = arg().split(',');
        add((p) => types.some((t) => dstType(t, p)));
        break;
      }
      case '--physdev-is-bridged':
        add((p) => p.bridged);
        break;
      case '--comment':
        arg();
        break;
      case '-m':
      case '--match': {
        const mod = arg();
        if (
          !['conntrack', 'state', 'comment', 'multiport', 'tcp', 'udp', 'physdev', 'addrtype'].includes(mod)
        ) {
          add(unknown);
        }
        break;
      }
      case '-j':
      case '--jump':
        verdict = target(arg(), 'jump');
        i = w.length; // target options follow
        break;
      case '-g':
      case '--goto':
        verdict = target(arg(), 'goto');
        i = w.length;
        break;
      default:
        // Options of a module the model does not know (and their values): the rule is unknown.
        if (t.startsWith('-')) add(unknown);
    }
  }
  return { matches, verdict, text };
}

/** addrtype --dst-type: the model's input packets are for the host (or broadcast), forwarded ones are not. */
function dstType(t: string, p: Packet): boolean {
  const bcast = p.dst === 0xffffffff;
  switch (t) {
    case 'LOCAL':
      return p.hook === 'input' && !bcast;
    case 'BROADCAST':
      return bcast;
    case 'UNICAST':
      return !bcast;
    default:
      return false;
  }
}

function target(name: string, how: 'jump' | 'goto'): Verdict {
  switch (name) {
    case 'ACCEPT':
      return { kind: 'accept' };
    case 'DROP':
      return { kind: 'drop' };
    case 'REJECT':
      return { kind: 'reject' };
    case 'RETURN':
      return { kind: 'return' };
    case 'LOG':
    case 'NFLOG':
    case 'MARK':
    case 'CONNMARK':
    case 'TCPMSS':
    case 'CHECKSUM':
      return { kind: 'none' };
    default:
      return how === 'goto' ? { kind: 'goto', target: name } : { kind: 'jump', target: name };
  }
}

function parseAddr(text: string): Cidr | undefined {
  return parseCidr(text.includes('/') ? text : `${text}/32`);
}

/** Whether `addr` (absent: some address the model does not fix) lies in `c`. */
export function addrMatch(c: Cidr | undefined, addr: number | undefined): boolean | undefined {
  if (!c) return undefined;
  if (c.prefix === 0) return true;
  if (addr === undefined) return undefined;
  return contains(c, addr);
}

/** "67", "53,67", "1024:65535" → a predicate. */
function parsePorts(text: string): (port: number) => boolean {
  const ranges = text.split(',').map((part) => {
    const [a = '', b] = part.split(':');
    const lo = a === '' ? 0 : Number(a);
    const hi = b === undefined ? lo : b === '' ? 65535 : Number(b);
    return [lo, hi] as const;
  });
  return (port) => ranges.some(([lo, hi]) => port >= lo && port <= hi);
}
