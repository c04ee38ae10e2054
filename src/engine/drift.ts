// Drift: what differs between the stored definitions of running networks and what the host
// reports (`kvmnet check`), and the repair that restores exactly that (`kvmnet repair`, and the
// daemon every few seconds). The comparison is pure (compareNetwork); repair reuses the planners,
// which only ever plan differences, so what is already right is not touched: an existing bridge is
// kept (guests' taps stay plugged), dnsmasq is restarted only when it is gone, its configuration
// differs, or its bridge had to be re-created, and nft gets one transaction for what differs.
// Not here: stopped networks (nothing of theirs should run) and definitions themselves.
import { driverFor } from '../drivers/registry.js';
import type { FirewallObserved } from '../firewall/backend.js';
import type { LinkInfo } from '../host/host.js';
import { inputError } from '../model/errors.js';
import { parseCidr } from '../model/ipv4.js';
import { isL3, l3, type NetworkDef } from '../model/network.js';
import { compareNames } from '../model/order.js';
import { tapMac, type PortDef } from '../model/port.js';
import {
  buildFragment,
  elementData,
  skeletonChains,
  skeletonTag,
  TABLE,
  type ElementSpec,
  type FirewallIntent,
  withoutOffload,
} from '../render/nft.js';
import { routeLine, type UplinkSnapshot } from './bridged.js';
import { dnatOf, peersOf, portsOf, type DriftSession, type Engine } from './engine.js';
import type { Paths } from './paths.js';
import { bridgePorts, joinBridgeStep, planBridgeTable } from './spoof.js';
import { BRIDGE_TABLE, bridgeDrift, parseBridgeTable } from '../render/nft-bridge.js';
import { dnsmasqFiles, isOurDnsmasq, planPorts, type NetworkPlan, type Observed, type Step } from './plan.js';
import type { AppliedNetwork, StateData } from './store.js';

/** Every kind of difference check reports. */
export type DriftKind =
  | 'bridge-missing'
  | 'bridge-down'
  | 'bridge-address'
  | 'bridge-settings'
  | 'sysctl'
  | 'nft-table'
  | 'nft-chain'
  | 'nft-element'
  | 'forward-missing'
  | 'dnsmasq-down'
  | 'dnsmasq-config'
  | 'tap-missing'
  | 'tap-unplugged'
  | 'tap-down'
  | 'tap-settings'
  | 'uplink-unplugged'
  | 'uplink-address'
  | 'uplink-route'
  | 'nft-bridge';

export const DRIFT_KINDS: readonly DriftKind[] = [
  'bridge-missing',
  'bridge-down',
  'bridge-address',
  'bridge-settings',
  'sysctl',
  'nft-table',
  'nft-chain',
  'nft-element',
  'forward-missing',
  'dnsmasq-down',
  'dnsmasq-config',
  'tap-missing',
  'tap-unplugged',
  'tap-down',
  'tap-settings',
  'uplink-unplugged',
  'uplink-address',
  'uplink-route',
  'nft-bridge',
];

export interface Finding {
  network: string;
  kind: DriftKind;
  /** The host object: a link name, `table inet kvmnet`, a chain, a map element, a file, a sysctl. */
  object: string;
  expected: string;
  actual: string;
  /** What repair does about it. */
  fix: string;
}

// ---- desired nft state ---------------------------------------------------------------------

/** One rule-bearing chain as kvmnet expects to observe it: its rules' count and comment. */
export interface NftChainWant {
  name: string;
  rules: number;
  comment: string;
  /** A base chain of the shared skeleton rather than the network's own. */
  base: boolean;
}

/**
 * What one nft table of kvmnet must hold for a network. A list, so that a later table (e.g. a
 * bridge-family table for anti-spoofing) is one more entry with its own observation.
 */
export interface NftTableWant {
  table: string;
  chains: NftChainWant[];
  elements: ElementSpec[];
}

/** The desired nft tables of a network with this firewall intent (empty: it needs no rules). */
export function desiredNft(intent: FirewallIntent): NftTableWant[] {
  const f = buildFragment(intent);
  if (f.chains.length === 0 && f.elements.length === 0) return [];
  const base = `kvmnet#${skeletonTag()}`;
  return [
    {
      table: TABLE,
      chains: [
        ...skeletonChains().map((c) => ({ name: c.name, rules: c.rules.length, comment: base, base: true })),
        ...f.chains.map((c) => ({
          name: c.name,
          rules: c.rules.length,
          comment: `${f.network}#${f.tag}`,
          base: false,
        })),
      ],
      elements: f.elements,
    },
  ];
}

const FORWARD_MAPS = new Set(['fwd_any', 'fwd_addr']);

/** Compares desired tables with what the firewall backend observed (table inet kvmnet). */
export function compareNft(network: string, want: NftTableWant[], obs: FirewallObserved): Finding[] {
  const out: Finding[] = [];
  for (const t of want) {
    const fix = `rewrite what differs of ${t.table} for ${network} in one nft transaction`;
    if (!obs.table) {
      out.push({
        network,
        kind: 'nft-table',
        object: `table ${t.table}`,
        expected: `present with ${t.chains.length} chains and ${t.elements.length} elements`,
        actual: 'missing',
        fix: `re-create table ${t.table}: its base chains and ${network}'s chains and elements`,
      });
      continue;
    }
    for (const c of t.chains) {
      const got = obs.chains.get(c.name);
      const bad = obs.badBaseChains.includes(c.name);
      if (got && !bad && got.length === c.rules && got.every((x) => x === c.comment)) continue;
      out.push({
        network,
        kind: 'nft-chain',
        object: `chain ${t.table} ${c.name}`,
        expected: `${c.rules} rules of kvmnet`,
        actual: !got
          ? 'missing'
          : bad
            ? 'another type, hook, priority or policy'
            : `${got.length} rules, ${got.filter((x) => x === c.comment).length} of them kvmnet's current ones`,
        fix: c.base ? `re-create the base chains of ${t.table}` : `rewrite chain ${c.name}`,
      });
    }
    // A base chain of an earlier skeleton still hooked (e.g. after an upgrade): it still costs every
    // packet it sees.
    for (const c of t.table === TABLE ? obs.retiredChains : []) {
      out.push({
        network,
        kind: 'nft-chain',
        object: `chain ${t.table} ${c}`,
        expected: 'absent (a base chain of an earlier kvmnet)',
        actual: 'present',
        fix: `re-create the base chains of ${t.table}`,
      });
    }
    for (const e of t.elements) {
      const key = `${e.map}|${e.key}`;
      const has = obs.elements.has(key);
      const data = obs.elements.get(key);
      if (has && data === elementData(e)) continue;
      const fwd = FORWARD_MAPS.has(e.map);
      out.push({
        network,
        kind: fwd ? 'forward-missing' : 'nft-element',
        object: `element ${e.key} in ${e.map}`,
        expected: elementData(e) ?? 'present',
        actual: has ? (data ?? 'present') : 'missing',
        fix: fwd ? `add the port forward's element again (${fix})` : fix,
      });
    }
  }
  return out;
}

// ---- comparison ----------------------------------------------------------------------------

export interface CompareInput {
  def: NetworkDef;
  applied: AppliedNetwork;
  obs: Observed;
  ports: PortDef[];
  /** The firewall intent of the network (with its forwards); absent for bridged networks. */
  intent?: FirewallIntent;
  sysctls: Record<string, string>;
  paths: Paths;
}

/** Every difference of one running network, pure. */
export function compareNetwork(x: CompareInput): Finding[] {
  const { def, applied, obs } = x;
  const name = def.name;
  const out: Finding[] = [];
  const br = applied.bridge;
  const link = obs.links.get(br);
  const bridgeOk = link !== undefined && link.kind === 'bridge';

  if (applied.uplink) {
    out.push(...compareUplink(name, br, link, applied.uplink, obs));
  } else if (isL3(def)) {
    const prefix = parseCidr(l3(def).subnet)?.prefix ?? 24;
    const gw = `${l3(def).gateway}/${prefix}`;
    if (!bridgeOk) {
      out.push({
        network: name,
        kind: 'bridge-missing',
        object: br,
        expected: `bridge with ${gw}`,
        actual: link ? `a ${link.kind ?? 'device'}` : 'missing',
        fix: `re-create bridge ${br} with ${gw}, plug the network's taps back in, restart dnsmasq`,
      });
    } else {
      if (!link.flags.includes('UP'))
        out.push({
          network: name,
          kind: 'bridge-down',
          object: br,
          expected: 'up',
          actual: 'down',
          fix: `ip link set ${br} up`,
        });
      const addrs = obs.addrs.filter((a) => a.ifname === br).map((a) => a.cidr);
      if (addrs.length !== 1 || addrs[0] !== gw)
        out.push({
          network: name,
          kind: 'bridge-address',
          object: br,
          expected: gw,
          actual: addrs.join(', ') || 'no address',
          fix: `set ${br}'s address to ${gw} (and remove others)`,
        });
      const settings: string[] = [];
      if (link.address !== def.mac) settings.push(`mac ${link.address}`);
      if (def.mtu !== undefined && link.mtu !== def.mtu) settings.push(`mtu ${link.mtu}`);
      if (link.stpState !== (def.stp ? 1 : 0)) settings.push(`stp ${link.stpState ?? '?'}`);
      if (settings.length)
        out.push({
          network: name,
          kind: 'bridge-settings',
          object: br,
          expected: [
            `mac ${def.mac}`,
            ...(def.mtu === undefined ? [] : [`mtu ${def.mtu}`]),
            `stp ${def.stp ? 1 : 0}`,
          ].join(', '),
          actual: settings.join(', '),
          fix: `set ${br}'s ${settings.map((s) => s.split(' ')[0]).join(', ')} back`,
        });
    }
    for (const [key, value] of Object.entries(x.sysctls)) {
      const got = obs.sysctls.get(key);
      if (got !== value)
        out.push({
          network: name,
          kind: 'sysctl',
          object: key,
          expected: value,
          actual: got ?? 'unknown',
          fix: `sysctl -w ${key}=${value}`,
        });
    }
    // What is applied: without the flowtable where the kernel has none (not a finding).
    if (x.intent)
      out.push(
        ...compareNft(name, desiredNft(withoutOffload(x.intent, obs.fw.flowtableSupport !== false)), obs.fw),
      );
    if (applied.dnsmasq) {
      const pid = applied.dnsmasq.pid;
      const running = pid !== undefined && isOurDnsmasq(obs.procs.get(pid), applied.dnsmasq.confFile);
      if (!running)
        out.push({
          network: name,
          kind: 'dnsmasq-down',
          object: `dnsmasq (${applied.dnsmasq.pidFile})`,
          expected: `running${pid === undefined ? '' : ` as pid ${pid}`}`,
          actual: 'not running',
          fix: 'start dnsmasq',
        });
      for (const [path, content] of dnsmasqFiles(def, x.paths, x.ports)) {
        const got = obs.files.get(path);
        if (got === content) continue;
        const isConf = path === x.paths.dnsmasqConf(name);
        out.push({
          network: name,
          kind: 'dnsmasq-config',
          object: path,
          expected: 'as rendered from the definition',
          actual: got == null ? 'missing' : 'differs',
          fix: `write it${running ? (isConf ? ', restart dnsmasq' : ', reload dnsmasq (SIGHUP)') : ''}`,
        });
      }
    }
  } else if (!bridgeOk) {
    // A host bridge (bridged network without uplink) is the host's: kvmnet never creates it.
    out.push({
      network: name,
      kind: 'bridge-missing',
      object: br,
      expected: "the host's bridge",
      actual: link ? `a ${link.kind ?? 'device'}` : 'missing',
      fix: `none: ${br} belongs to the host's network configuration; create it there`,
    });
  }
  out.push(...comparePorts(name, x.ports, bridgeOk ? br : null, obs.links, def.mtu));
  return out;
}

function compareUplink(
  name: string,
  br: string,
  link: LinkInfo | undefined,
  up: UplinkSnapshot,
  obs: Observed,
): Finding[] {
  const out: Finding[] = [];
  if (!link || link.kind !== 'bridge') {
    out.push({
      network: name,
      kind: 'bridge-missing',
      object: br,
      expected: `bridge with ${up.ifname}'s MAC ${up.mac}`,
      actual: link ? `a ${link.kind ?? 'device'}` : 'missing',
      fix: `re-create ${br}, move ${up.ifname} and its addresses and routes under it, plug the taps back in`,
    });
    return out;
  }
  if (!link.flags.includes('UP'))
    out.push({
      network: name,
      kind: 'bridge-down',
      object: br,
      expected: 'up',
      actual: 'down',
      fix: `ip link set ${br} up`,
    });
  const upl = obs.links.get(up.ifname);
  if (upl?.master !== br)
    out.push({
      network: name,
      kind: 'uplink-unplugged',
      object: up.ifname,
      expected: `port of ${br}`,
      actual: upl ? (upl.master ? `port of ${upl.master}` : 'no master') : 'missing',
      fix: `ip link set ${up.ifname} master ${br}`,
    });
  for (const a of up.addrs) {
    if (obs.addrs.some((x) => x.ifname === br && x.cidr === a.cidr)) continue;
    out.push({
      network: name,
      kind: 'uplink-address',
      object: br,
      expected: a.cidr,
      actual: 'missing',
      fix: `ip addr add ${a.cidr} dev ${br}${obs.addrs.some((x) => x.ifname === up.ifname && x.cidr === a.cidr) ? ` (and remove it from ${up.ifname})` : ''}`,
    });
  }
  for (const r of up.routes) {
    const ok = obs.routes.some(
      (x) => x.dev === br && x.dst === r.dst && x.gateway === r.gateway && x.metric === r.metric,
    );
    if (ok) continue;
    out.push({
      network: name,
      kind: 'uplink-route',
      object: `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}`,
      expected: `on ${br}`,
      actual: 'missing',
      fix: `ip ${routeLine(r, br)}`,
    });
  }
  return out;
}

/** The ports' taps against the bridge (null: the bridge is missing; it gets them when re-made). */
export function comparePorts(
  name: string,
  ports: PortDef[],
  bridge: string | null,
  links: Map<string, LinkInfo>,
  mtu?: number,
): Finding[] {
  const out: Finding[] = [];
  for (const p of ports) {
    if (p.tap === 'libvirt') continue;
    const link = links.get(p.name);
    const obj = `${p.name} (${p.vm}/net${p.index})`;
    if (!link) {
      out.push({
        network: name,
        kind: 'tap-missing',
        object: obj,
        expected: 'tap present',
        actual: 'missing',
        fix: `create tap ${p.name} and plug it in (the guest must re-open it)`,
      });
      continue;
    }
    if (bridge !== null && link.master !== bridge)
      out.push({
        network: name,
        kind: 'tap-unplugged',
        object: obj,
        expected: `port of ${bridge}`,
        actual: link.master ? `port of ${link.master}` : 'no master',
        fix: `ip link set ${p.name} master ${bridge}`,
      });
    const isUp = link.flags.includes('UP');
    if ((p.link === 'up') !== isUp)
      out.push({
        network: name,
        kind: 'tap-down',
        object: obj,
        expected: p.link,
        actual: isUp ? 'up' : 'down',
        fix: `ip link set ${p.name} ${p.link}`,
      });
    const settings: string[] = [];
    if (link.address !== tapMac(p.mac)) settings.push(`mac ${link.address}, expected ${tapMac(p.mac)}`);
    if (mtu !== undefined && link.mtu !== mtu) settings.push(`mtu ${link.mtu}, expected ${mtu}`);
    if (settings.length)
      out.push({
        network: name,
        kind: 'tap-settings',
        object: obj,
        expected: 'as stored',
        actual: settings.join('; '),
        fix: `set ${p.name}'s ${settings.map((s) => s.split(' ')[0]).join(', ')} back`,
      });
  }
  return out;
}

// ---- check and repair over the engine ------------------------------------------------------

export interface CheckResult {
  networks: string[];
  findings: Finding[];
}

export interface RepairResult extends CheckResult {
  dryRun: boolean;
  /** The plans run (or, with dryRun, that would run), one per network with findings. */
  plans: NetworkPlan[];
  /** What check finds afterwards (empty when everything was restored; dry run: not checked). */
  remaining: Finding[];
  /** Networks whose repair failed (and was rolled back), with the reason. */
  errors: string[];
}

interface Scope {
  state: StateData;
  /** The running networks to look at. */
  targets: Array<{ def: NetworkDef; applied: AppliedNetwork }>;
  /** Every network with an applied record (the anti-spoofing table covers all of their ports). */
  running: Set<string>;
}

/** The running networks to look at: all of them, or the named ones (unknown name: exit 2). */
async function scope(engine: Engine, names: string[]): Promise<Scope> {
  const state = await engine.store.load();
  for (const n of names) {
    if (!state.networks[n]) {
      const known = Object.keys(state.networks);
      throw inputError(
        'unknown-network',
        `network "${n}" is not defined`,
        known.length ? `defined networks: ${known.join(', ')}` : 'there are no networks to check',
      );
    }
  }
  const applied = await engine.store.listApplied();
  const targets = applied
    .filter((a) => a.state === 'active' && (names.length === 0 || names.includes(a.network)))
    .flatMap((a) => {
      const def = state.networks[a.network];
      return def ? [{ def, applied: a }] : [];
    })
    .sort((a, b) => compareNames(a.def.name, b.def.name));
  return { state, targets, running: new Set(applied.map((a) => a.network)) };
}

async function findingsOf(
  engine: Engine,
  s: DriftSession,
  { state, targets, running }: Scope,
): Promise<Finding[]> {
  if (targets.length === 0) return [];
  const obs = await s.observe(
    targets.map((t) => t.def).filter((d) => isL3(d)),
    targets.map((t) => t.applied),
  );
  const out: Finding[] = [];
  for (const { def, applied } of targets) {
    const driver = driverFor(def.mode);
    const l3net = !driver.capabilities.uplink && isL3(def);
    out.push(
      ...compareNetwork({
        def,
        applied,
        obs,
        ports: portsOf(state, def.name),
        ...(l3net ? { intent: driver.firewall(def, dnatOf(state, def), peersOf(state, def)) } : {}),
        sysctls: l3net ? driver.sysctls(def) : {},
        paths: engine.paths,
      }),
    );
  }
  // The anti-spoofing table (table bridge kvmnet) is shared by every running network's ports: its
  // drift is one finding, on the first checked network with a spoof-checked port (repairing that
  // network brings the table in line in its nft transaction, as `net start` does: only the chains,
  // elements and set members that differ, or the whole table when it is missing or its base is wrong).
  const table = parseBridgeTable(obs.bridgeTable);
  const why = bridgeDrift(bridgePorts(state, running), table);
  if (why.length > 0) {
    const owner =
      targets.find((t) => portsOf(state, t.def.name).some((p) => p.spoofCheck !== false)) ?? targets[0];
    if (owner) {
      out.push({
        network: owner.def.name,
        kind: 'nft-bridge',
        object: `table ${BRIDGE_TABLE}`,
        expected: 'the anti-spoofing chains of the running ports',
        actual: why.join('; '),
        fix: `bring table ${BRIDGE_TABLE} in line in one nft transaction`,
      });
    }
  }
  return out;
}

/** `kvmnet check`: every difference of the running networks (all, or the named ones). */
export async function checkDrift(engine: Engine, names: string[] = []): Promise<CheckResult> {
  return engine.driftSession(async (s) => {
    const sc = await scope(engine, names);
    return {
      networks: sc.targets.map((t) => t.def.name),
      findings: await findingsOf(engine, s, sc),
    };
  });
}

/** `kvmnet repair`: restores what check finds, network by network, touching nothing else. */
export async function repairDrift(
  engine: Engine,
  names: string[] = [],
  /** lockTimeoutMs: give up (an error) when the state lock stays held longer (default 60 s). */
  opts: { dryRun: boolean; lockTimeoutMs?: number } = { dryRun: false },
): Promise<RepairResult> {
  return engine.driftSession(async (s) => {
    const sc = await scope(engine, names);
    const { state, targets } = sc;
    const findings = await findingsOf(engine, s, sc);
    const plans: NetworkPlan[] = [];
    const errors: string[] = [];
    for (const t of targets) {
      const mine = findings.filter((f) => f.network === t.def.name);
      if (mine.length === 0) continue;
      try {
        if (t.applied.uplink || t.applied.hostBridge) {
          const obs = await s.observe([], [t.applied]);
          const steps = planBridgedRepair(t.applied, obs, portsOf(state, t.def.name));
          if (mine.some((f) => f.kind === 'nft-bridge')) {
            joinBridgeStep(
              steps,
              await planBridgeTable(engine.host, engine.paths, state, sc.running, obs.bridgeTable),
            );
          }
          const plan: NetworkPlan = { network: t.def.name, action: 'update', steps };
          plans.push(plan);
          if (!opts.dryRun && plan.steps.length) await s.run(plan);
        } else {
          const rebuilt = mine.some((f) => f.kind === 'bridge-missing');
          plans.push(...(await s.start(state, t.def.name, opts.dryRun, rebuilt)));
        }
      } catch (e) {
        errors.push(`${t.def.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    // Read the records again: a repair may have restarted dnsmasq (a new pid).
    const now = opts.dryRun ? undefined : await scope(engine, names);
    const remaining = now ? await findingsOf(engine, s, now) : [];
    return {
      networks: targets.map((t) => t.def.name),
      findings,
      dryRun: opts.dryRun,
      plans,
      remaining,
      errors,
    };
  }, opts.lockTimeoutMs);
}

/** The repair of a bridged network: its bridge, uplink, addresses and routes, then its taps. */
export function planBridgedRepair(applied: AppliedNetwork, obs: Observed, ports: PortDef[]): Step[] {
  const br = applied.bridge;
  const link = obs.links.get(br);
  const steps: Step[] = [];
  const up = applied.uplink;
  if (up) {
    const lines: string[] = [];
    const undo: string[] = [];
    if (!link) {
      const mtu = up.mtu && up.mtu !== 1500 ? ` mtu ${up.mtu}` : '';
      lines.push(`link add name ${br} address ${up.mac}${mtu} type bridge stp_state 0 forward_delay 0`);
      undo.push(`link del dev ${br}`);
    }
    if (!link?.flags.includes('UP')) lines.push(`link set dev ${br} up`);
    if (obs.links.get(up.ifname)?.master !== br) lines.push(`link set dev ${up.ifname} master ${br}`);
    for (const a of up.addrs) {
      if (!obs.addrs.some((x) => x.ifname === br && x.cidr === a.cidr))
        lines.push(`addr add ${a.cidr}${a.broadcast ? ` broadcast ${a.broadcast}` : ''} dev ${br}`);
      if (obs.addrs.some((x) => x.ifname === up.ifname && x.cidr === a.cidr))
        lines.push(`addr del ${a.cidr} dev ${up.ifname}`);
    }
    // Routes go when their device goes down or loses the address: re-add every one (replace).
    const routesOk = up.routes.every((r) =>
      obs.routes.some(
        (x) => x.dev === br && x.dst === r.dst && x.gateway === r.gateway && x.metric === r.metric,
      ),
    );
    if (lines.length || !routesOk) lines.push(...up.routes.map((r) => routeLine(r, br)));
    if (lines.length)
      steps.push({
        kind: 'ip',
        why: `restore bridge ${br} over ${up.ifname}`,
        lines,
        undo: undo.reverse(),
      });
  }
  // The taps: plugged into the bridge (re-made above, or the host's if it exists) as stored.
  if (link || up) steps.push(...planPorts(ports, br, obs));
  return steps;
}

/** One line per finding, for the terminal. */
export function formatFindings(findings: Finding[]): string {
  return findings
    .map(
      (f) =>
        `${f.network}: ${f.kind} ${f.object}: expected ${f.expected}, found ${f.actual}; repair: ${f.fix}\n`,
    )
    .join('');
}
