// `kvmnet doctor`'s analysis: from facts collected on the host (src/host/doctor.ts) to findings,
// each with a severity, an explanation and the exact commands that fix it. Pure: no I/O, so the
// unit tests feed it recorded rulesets (Docker's iptables-save, nft -j JSON of ufw/firewalld-like
// tables). It does not decide what --fix runs beyond marking the safe fixes and their actions.
import { formatIpv4, overlaps, parseCidr, parseIpv4, type Cidr } from '../model/ipv4.js';
import { parseIptablesSave } from './iptables.js';
import { parseNftRuleset } from './nft.js';
import { evaluate, type Chain, type Packet, type Ruleset } from './rules.js';

export interface NetworkFact {
  name: string;
  mode: string;
  bridge: string;
  subnet?: string;
  gateway?: string;
  dhcp: boolean;
  running: boolean;
  /** nat/routed: the only interface its traffic leaves through (otherwise the default route's). */
  forwardDev?: string;
}

export interface DoctorFacts {
  networks: NetworkFact[];
  /** Tool name → whether it is on PATH. */
  tools: Record<string, boolean>;
  /** net.ipv4.ip_forward, or null when unreadable. */
  ipForward: string | null;
  /** net.bridge.bridge-nf-call-iptables, or null when the file is absent (br_netfilter not loaded). */
  bridgeNfCallIptables: string | null;
  /** `iptables-nft-save` / `iptables-legacy-save` output; null when the tool is missing or failed. */
  iptablesNft: string | null;
  iptablesLegacy: string | null;
  /** `nft -j list ruleset`, or null when nft is missing or failed. */
  nftRuleset: unknown;
  routes: Array<{ dst: string; dev?: string; protocol?: string }>;
  addrs: Array<{ ifname: string; cidr: string }>;
}

/** What --fix does for a safe finding. */
export type FixAction = { kind: 'exec'; argv: string[] } | { kind: 'sysctl'; key: string; value: string };

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  /** Stable: `<check>` or `<check>:<what>`, e.g. "iptables-forward-drop:nft:virbr0". */
  id: string;
  check: string;
  severity: Severity;
  network?: string;
  summary: string;
  explanation: string;
  /** The exact commands that fix it, as shell lines (comments start with "#"). */
  fix: string[];
  /** --fix applies it (it only adds accept rules in chains meant for the user, or raises a sysctl). */
  safe: boolean;
  actions: FixAction[];
}

export const DOCTOR_TOOLS: Record<string, string> = {
  ip: 'apt-get install iproute2',
  nft: 'apt-get install nftables',
  dnsmasq: 'apt-get install dnsmasq-base',
};

/** Tables of iptables-nft (analysed through iptables-nft-save, whose xt matches nft -j cannot show). */
const IPTABLES_NFT_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

interface Traffic {
  what: string;
  packet: Packet;
}

/** The sample packets whose fate says whether a network works. */
function trafficOf(n: NetworkFact, defaultUplink: string, brnf: boolean): Traffic[] {
  const out: Traffic[] = [];
  const uplink = n.forwardDev ?? defaultUplink;
  const sub = n.subnet ? parseCidr(n.subnet) : undefined;
  const gw = n.gateway ? parseIpv4(n.gateway) : undefined;
  const guest = sub ? (sub.addr + 2) >>> 0 : undefined;
  const external = ['nat', 'routed', 'open'].includes(n.mode);
  const lan = parseIpv4('192.0.2.10');
  if (external) {
    out.push({
      what: 'guests reaching the LAN and the internet',
      packet: {
        hook: 'forward',
        iif: n.bridge,
        oif: uplink,
        proto: 'tcp',
        sport: 40000,
        dport: 443,
        ...(guest === undefined ? {} : { src: guest }),
        ...(lan === undefined ? {} : { dst: lan }),
        ct: 'new',
        bridged: false,
      },
    });
    out.push({
      what: 'replies coming back to guests',
      packet: {
        hook: 'forward',
        iif: uplink,
        oif: n.bridge,
        proto: 'tcp',
        sport: 443,
        dport: 40000,
        ...(lan === undefined ? {} : { src: lan }),
        ...(guest === undefined ? {} : { dst: guest }),
        ct: 'established',
        bridged: false,
      },
    });
  }
  if (brnf) {
    out.push({
      what:
        n.mode === 'bridge'
          ? 'bridged traffic of guests (br_netfilter passes it to the IP hooks)'
          : 'traffic between guests on the bridge (br_netfilter passes it to the IP hooks)',
      packet: {
        hook: 'forward',
        iif: n.bridge,
        oif: n.bridge,
        proto: 'tcp',
        sport: 40000,
        dport: 80,
        ...(guest === undefined ? {} : { src: guest, dst: (guest + 1) >>> 0 }),
        ct: 'new',
        bridged: true,
      },
    });
  }
  if (n.mode !== 'bridge' && n.mode !== 'open') {
    if (n.dhcp)
      out.push({
        what: "guests' DHCP requests to kvmnet's dnsmasq (udp 67)",
        packet: {
          hook: 'input',
          iif: n.bridge,
          proto: 'udp',
          sport: 68,
          dport: 67,
          src: 0,
          dst: 0xffffffff,
          ct: 'new',
          bridged: false,
        },
      });
    out.push({
      what: "guests' DNS queries to kvmnet's dnsmasq (udp 53)",
      packet: {
        hook: 'input',
        iif: n.bridge,
        proto: 'udp',
        sport: 40000,
        dport: 53,
        ...(guest === undefined ? {} : { src: guest }),
        ...(gw === undefined ? {} : { dst: gw }),
        ct: 'new',
        bridged: false,
      },
    });
  }
  return out;
}

interface Drop {
  traffic: Traffic;
  chain: string;
  by: string;
}

function drops(rs: Ruleset, base: Chain, traffic: Traffic[]): Drop[] {
  const out: Drop[] = [];
  for (const t of traffic) {
    if (base.hook !== t.packet.hook) continue;
    const r = evaluate(rs, base, t.packet);
    if (r.verdict === 'drop') out.push({ traffic: t, chain: r.chain, by: r.by });
  }
  return out;
}

function describeDrops(ds: Drop[]): string {
  return ds.map((d) => `${d.traffic.what}: dropped in chain ${d.chain} by "${d.by}"`).join('; ');
}

const q = (s: string): string => (/^[A-Za-z0-9_.,:/@+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

export function analyse(f: DoctorFacts): Finding[] {
  const findings: Finding[] = [];
  const defaultRoute = f.routes.find((r) => r.dst === 'default');
  const uplink = defaultRoute?.dev ?? 'eth0';
  const brnf = f.bridgeNfCallIptables !== null && f.bridgeNfCallIptables.trim() === '1';
  const running = f.networks.filter((n) => n.running);

  // Missing tools.
  for (const [tool, install] of Object.entries(DOCTOR_TOOLS)) {
    if (f.tools[tool] === false)
      findings.push({
        id: `missing-tool:${tool}`,
        check: 'missing-tool',
        severity: 'error',
        summary: `${tool} is not installed (or not on PATH)`,
        explanation:
          tool === 'dnsmasq'
            ? 'kvmnet runs dnsmasq for the DHCP and DNS of every network it owns the subnet of'
            : `kvmnet builds networks with ${tool}; nothing can start without it`,
        fix: [install],
        safe: false,
        actions: [],
      });
  }

  // ip_forward.
  const external = running.filter((n) => ['nat', 'routed', 'open'].includes(n.mode));
  if (external.length && f.ipForward !== null && f.ipForward.trim() !== '1')
    findings.push({
      id: 'ip-forward-off',
      check: 'ip-forward-off',
      severity: 'error',
      summary: `net.ipv4.ip_forward is ${f.ipForward.trim()} while ${external.map((n) => n.name).join(', ')} run`,
      explanation:
        'kvmnet turned IPv4 forwarding on when it started these networks and something turned it off ' +
        '(a sysctl.d file, a firewall or a VPN tool); guests cannot reach beyond the host. ' +
        'Make it permanent with a file in /etc/sysctl.d if the culprit runs at boot',
      fix: ['sysctl -w net.ipv4.ip_forward=1'],
      safe: true,
      actions: [{ kind: 'sysctl', key: 'net.ipv4.ip_forward', value: '1' }],
    });

  // Subnet clashes with the host's routes and addresses.
  for (const n of f.networks) {
    const sub = n.subnet ? parseCidr(n.subnet) : undefined;
    if (!sub) continue;
    const clashes: string[] = [];
    for (const r of f.routes) {
      if (r.dst === 'default' || r.dev === n.bridge) continue;
      const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (c && c.prefix > 0 && overlaps(c, sub))
        clashes.push(`route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`);
    }
    for (const a of f.addrs) {
      if (a.ifname === n.bridge) continue;
      const c = parseCidr(a.cidr);
      if (c && overlaps(netOf(c), sub) && !clashes.some((x) => x.endsWith(`dev ${a.ifname}`)))
        clashes.push(`address ${a.cidr} on ${a.ifname}`);
    }
    if (clashes.length === 0) continue;
    const free = freeSubnet(f, sub.prefix);
    findings.push({
      id: `subnet-clash:${n.name}`,
      check: 'subnet-clash',
      severity: n.running ? 'error' : 'warning',
      network: n.name,
      summary: `subnet ${n.subnet ?? ''} of "${n.name}" clashes with the host's ${clashes.join(', ')}`,
      explanation:
        'the host routes part of this subnet elsewhere (a VPN, Docker, another bridge or the LAN itself), so ' +
        "guests' traffic to those addresses, or the host's replies to guests, go the wrong way",
      fix: [
        `kvmnet export -o /tmp/kvmnet-networks.yaml`,
        `# in /tmp/kvmnet-networks.yaml give "${n.name}" a free subnet${free ? `, e.g. ${free}` : ''} (and its gateway and DHCP range)`,
        `kvmnet apply -f /tmp/kvmnet-networks.yaml`,
      ],
      safe: false,
      actions: [],
    });
  }

  // br_netfilter.
  if (brnf && running.some((n) => n.mode !== 'open'))
    findings.push({
      id: 'br-netfilter',
      check: 'br-netfilter',
      severity: 'info',
      summary: 'br_netfilter is loaded and net.bridge.bridge-nf-call-iptables is 1',
      explanation:
        "frames bridged between guests (and a bridged network's LAN traffic) go through the iptables and " +
        'nftables ip/inet forward chains too, so a FORWARD policy DROP also cuts guests off from each other; ' +
        'the findings below include that traffic. Docker and Kubernetes need this setting, so doctor never changes it',
      fix: [
        '# only if nothing on this host needs it (Docker, Kubernetes do):',
        'sysctl -w net.bridge.bridge-nf-call-iptables=0',
      ],
      safe: false,
      actions: [],
    });

  // iptables (nft and legacy backends).
  for (const [variant, text] of [
    ['nft', f.iptablesNft],
    ['legacy', f.iptablesLegacy],
  ] as const) {
    if (text === null) continue;
    const rs = parseIptablesSave(text, `iptables-${variant}`);
    if (!rs) continue;
    const bin = `iptables-${variant}`;
    const docker = rs.chains.has('DOCKER-USER');
    for (const n of running) {
      const traffic = trafficOf(n, uplink, brnf);
      for (const hook of ['FORWARD', 'INPUT'] as const) {
        const base = rs.chains.get(hook);
        if (!base) continue;
        const ds = drops(rs, base, traffic);
        if (ds.length === 0) continue;
        if (hook === 'FORWARD') {
          const chain = docker ? 'DOCKER-USER' : 'FORWARD';
          const argvs = [
            [bin, '-I', chain, '-i', n.bridge, '-j', 'ACCEPT'],
            [
              bin,
              '-I',
              chain,
              '-o',
              n.bridge,
              '-m',
              'conntrack',
              '--ctstate',
              'RELATED,ESTABLISHED',
              '-j',
              'ACCEPT',
            ],
          ];
          findings.push({
            id: `iptables-forward-drop:${variant}:${n.bridge}`,
            check: 'iptables-forward-drop',
            severity: 'error',
            network: n.name,
            summary: `${bin} FORWARD drops traffic of ${n.bridge} ("${n.name}")${docker ? " (Docker's rules)" : ''}`,
            explanation:
              `${describeDrops(ds)}. A packet must be accepted by every base chain at a hook, so kvmnet's own ` +
              `accept does not help. ` +
              (docker
                ? "Docker sets the FORWARD policy to DROP and keeps the DOCKER-USER chain for the admin's rules, which it never flushes; " +
                  'accepting the bridge there is safe. Rules added now last until reboot: re-run `kvmnet doctor --fix` at boot after Docker starts'
                : 'FORWARD belongs to whatever firewall set its policy (ufw: DEFAULT_FORWARD_POLICY, or `ufw route allow in on ' +
                  n.bridge +
                  '`); add the rules there so they survive its reloads'),
            fix: argvs.map((a) => a.map(q).join(' ')),
            safe: docker,
            actions: docker ? argvs.map((argv) => ({ kind: 'exec' as const, argv })) : [],
          });
        } else {
          const argvs = [
            [
              bin,
              '-I',
              'INPUT',
              '-i',
              n.bridge,
              '-p',
              'udp',
              '-m',
              'multiport',
              '--dports',
              '53,67',
              '-j',
              'ACCEPT',
            ],
            [bin, '-I', 'INPUT', '-i', n.bridge, '-p', 'tcp', '--dport', '53', '-j', 'ACCEPT'],
          ];
          findings.push({
            id: `iptables-input-drop:${variant}:${n.bridge}`,
            check: 'iptables-input-drop',
            severity: 'error',
            network: n.name,
            summary: `${bin} INPUT drops DHCP/DNS of ${n.bridge} ("${n.name}")`,
            explanation:
              `${describeDrops(ds)}. Guests get no address or no name resolution from kvmnet's dnsmasq. ` +
              'INPUT belongs to the host firewall (ufw: `ufw allow in on ' +
              n.bridge +
              ' to any port 67 proto udp` and port 53); add the rules there so they survive its reloads',
            fix: argvs.map((a) => a.map(q).join(' ')),
            safe: false,
            actions: [],
          });
        }
      }
    }
  }

  // Other nftables tables (ufw on nft, firewalld, NixOS, hand-written).
  const tables = f.nftRuleset ? parseNftRuleset(f.nftRuleset) : [];
  for (const t of tables) {
    if (t.family === 'inet' && t.name === 'kvmnet') continue;
    if (!['ip', 'inet'].includes(t.family)) continue;
    if (t.family === 'ip' && f.iptablesNft !== null && IPTABLES_NFT_TABLES.has(t.name)) continue;
    const rs: Ruleset = { label: `nft table ${t.family} ${t.name}`, chains: t.chains };
    for (const base of t.chains.values()) {
      if (base.hook !== 'forward' && base.hook !== 'input') continue;
      for (const n of running) {
        const ds = drops(rs, base, trafficOf(n, uplink, brnf));
        if (ds.length === 0) continue;
        const pre = `nft insert rule ${t.family} ${q(t.name)} ${q(base.name)}`;
        const fix =
          base.hook === 'forward'
            ? [
                `${pre} iifname "${n.bridge}" accept`,
                `${pre} oifname "${n.bridge}" ct state established,related accept`,
              ]
            : [
                `${pre} iifname "${n.bridge}" udp dport { 53, 67 } accept`,
                `${pre} iifname "${n.bridge}" tcp dport 53 accept`,
              ];
        const owner = /firewalld/i.test(t.name)
          ? ` Better, with firewalld: \`firewall-cmd --permanent --zone=trusted --add-interface=${n.bridge} && firewall-cmd --reload\`.`
          : /ufw/i.test(t.name)
            ? ` Better, with ufw: \`ufw allow in on ${n.bridge}\` and \`ufw route allow in on ${n.bridge}\`.`
            : '';
        findings.push({
          id: `nft-${base.hook}-drop:${t.family}/${t.name}/${base.name}:${n.bridge}`,
          check: `nft-${base.hook}-drop`,
          severity: 'error',
          network: n.name,
          summary: `nftables table ${t.family} ${t.name}, chain ${base.name} (hook ${base.hook}) drops traffic of ${n.bridge} ("${n.name}")`,
          explanation:
            `${describeDrops(ds)}. A packet must be accepted by every base chain at a hook, in every table; ` +
            "an accept in kvmnet's own table cannot override another table's drop, so the fix goes into that " +
            `table, and whoever owns it may rewrite it on reload (doctor does not apply it).${owner}`,
          fix,
          safe: false,
          actions: [],
        });
      }
    }
  }
  return findings;
}

function netOf(c: Cidr): Cidr {
  const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
  return { addr: (c.addr & mask) >>> 0, prefix: c.prefix };
}

/** A 192.168.N.0/prefix (prefix ≥ 16) that no route, address or network uses. */
function freeSubnet(f: DoctorFacts, prefix: number): string | undefined {
  const used: Cidr[] = [];
  for (const r of f.routes) {
    const c = r.dst === 'default' ? undefined : parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
    if (c) used.push(c);
  }
  for (const a of f.addrs) {
    const c = parseCidr(a.cidr);
    if (c) used.push(netOf(c));
  }
  for (const n of f.networks) {
    const c = n.subnet ? parseCidr(n.subnet) : undefined;
    if (c) used.push(c);
  }
  const p = Math.max(prefix, 24);
  for (let i = 122; i < 256 + 122; i++) {
    const cand: Cidr = { addr: (parseIpv4(`192.168.${i % 256}.0`) ?? 0) >>> 0, prefix: p };
    if (!used.some((u) => overlaps(u, cand))) return `${formatIpv4(cand.addr)}/${p}`;
  }
  return undefined;
}

/** Findings that make `kvmnet doctor` exit 1 (info findings do not). */
export function blocking(fs: Finding[]): Finding[] {
  return fs.filter((x) => x.severity !== 'info');
}
