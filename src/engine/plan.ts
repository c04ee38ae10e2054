// Plans: the exact steps that bring the host from what was observed to what is desired, computed
// by pure functions so `--dry-run` shows precisely what an apply would do, and a second apply of
// the same desired state yields an empty plan.
import type { AppliedFirewall, FirewallBackend, FirewallObserved } from '../firewall/backend.js';
import type { AddrInfo, LinkInfo, RouteInfo } from '../host/host.js';
import type { NetworkDriver } from '../drivers/driver.js';
import { parseCidr } from '../model/ipv4.js';
import type { DnatEntry } from '../model/forward.js';
import { l3, type NetworkDef } from '../model/network.js';
import { renderDhcpHosts, renderHosts, tapMac, type PortDef } from '../model/port.js';
import { renderLeaseHook } from '../render/nft-bridge.js';
import { renderDnsmasqConf, renderNetworkDhcpHosts, renderNetworkHosts } from '../render/dnsmasq.js';
import { restoreLines } from './bridged.js';
import type { Paths } from './paths.js';
import type { AppliedNetwork } from './store.js';

// formatPlan lives in plan-format.ts (zod-free, for the CLI's start-up) and is re-exported here.
export { formatPlan } from './plan-format.js';

export type Step =
  /** force: run with `ip -force -batch` (every line tried), for restores. */
  | { kind: 'ip'; why: string; lines: string[]; undo: string[]; force?: boolean }
  | { kind: 'sysctl'; why: string; key: string; value: string }
  | { kind: 'nft'; why: string; script: string; undo: string }
  | { kind: 'write'; why: string; path: string; content: string; mode?: number }
  | { kind: 'remove'; why: string; path: string }
  | { kind: 'dnsmasq-start'; why: string; confFile: string; pidFile: string; leaseFile: string }
  | { kind: 'dnsmasq-stop'; why: string; pid: number }
  | { kind: 'dnsmasq-reload'; why: string; pid: number }
  /** Connectivity check: `target` must answer a ping out of `dev` within `timeoutS`, or the apply rolls back. */
  | { kind: 'check'; why: string; target: string; dev: string; timeoutS: number };

export interface NetworkPlan {
  network: string;
  /** start: bring up a stopped network; update: bring a running one (or a stopped one's ports) in line; stop. */
  action: 'start' | 'update' | 'stop';
  steps: Step[];
  /** What the user should know about this apply (e.g. flow offload skipped: no kernel support). */
  notes?: string[];
}

/** What the host looks like now, as far as kvmnet cares. */
export interface Observed {
  links: Map<string, LinkInfo>;
  addrs: AddrInfo[];
  routes: RouteInfo[];
  fw: FirewallObserved;
  /** `nft -j list table bridge kvmnet` as parsed JSON (null: no such table). */
  bridgeTable: unknown;
  sysctls: Map<string, string>;
  /** Contents of files kvmnet manages (null: absent). */
  files: Map<string, string | null>;
  /** argv of processes kvmnet recorded (null: not running). */
  procs: Map<number, string[] | null>;
}

export interface PlanContext {
  paths: Paths;
  firewall: FirewallBackend;
}

export function dnsmasqFiles(def: NetworkDef, paths: Paths, ports: PortDef[]): Map<string, string> {
  const conf = renderDnsmasqConf(def, {
    pidFile: paths.dnsmasqPid(def.name),
    leaseFile: paths.leaseFile(def.name),
    dhcpHostsFile: paths.dhcpHostsFile(def.name),
    hostsFile: paths.hostsFile(def.name),
    ...(def.dhcp ? { leaseHook: paths.leaseHook(def.name) } : {}),
  });
  return new Map([
    ...(def.dhcp ? [[paths.leaseHook(def.name), renderLeaseHook()] as [string, string]] : []),
    [paths.dnsmasqConf(def.name), conf],
    // The network's own static hosts first, then the ports' reservations (kept apart by validation).
    [paths.dhcpHostsFile(def.name), renderNetworkDhcpHosts(def) + renderDhcpHosts(ports)],
    [paths.hostsFile(def.name), renderNetworkHosts(def) + renderHosts(ports)],
  ]);
}

/** Is this pid a dnsmasq started with this conf file? */
export function isOurDnsmasq(argv: string[] | null | undefined, confFile: string): boolean {
  return !!argv && argv.some((a) => a === `--conf-file=${confFile}`);
}

/**
 * The network's running dnsmasq: the pid in the applied record, else the one in its pid file (a
 * crash between starting dnsmasq and recording its pid leaves only the file). Either counts only
 * if that process runs with the network's conf file: a pid is never trusted by name alone.
 */
export function runningDnsmasq(
  applied: AppliedNetwork | undefined,
  obs: Pick<Observed, 'procs'>,
  confFile: string,
): number | undefined {
  const recorded = applied?.dnsmasq?.pid;
  if (recorded !== undefined && isOurDnsmasq(obs.procs.get(recorded), confFile)) return recorded;
  for (const [pid, argv] of obs.procs) if (isOurDnsmasq(argv, confFile)) return pid;
  return undefined;
}

/** Plans a network into the running state. `applied` is the record of the previous apply, if any. */
export function planStart(
  def: NetworkDef,
  driver: NetworkDriver,
  obs: Observed,
  applied: AppliedNetwork | undefined,
  ctx: PlanContext,
  ports: PortDef[],
  dnat: DnatEntry[] = [],
  peerBridges: string[] = [],
  /** Drift repair after the bridge was re-created: restart a running dnsmasq too. */
  opts: { restartDnsmasq?: boolean } = {},
): { plan: NetworkPlan; firewall: AppliedFirewall } {
  const steps: Step[] = [];
  const br = def.bridge;
  const prefix = parseCidr(l3(def).subnet)?.prefix ?? 24;
  const gwCidr = `${l3(def).gateway}/${prefix}`;
  const link = obs.links.get(br);
  const stp = def.stp ? 1 : 0;
  // forward_delay is in centiseconds (USER_HZ). Starting STP raises a delay below 2 s to 2 s
  // (br_stp_start), as it does under libvirt: expect what the kernel will report.
  const delay = Math.max((def.forwardDelay ?? 0) * 100, stp ? 200 : 0);
  const mtu = def.mtu === undefined ? '' : ` mtu ${def.mtu}`;
  if (!link) {
    steps.push({
      kind: 'ip',
      why: `create bridge ${br} with ${gwCidr}`,
      lines: [
        `link add name ${br} address ${def.mac}${mtu} type bridge stp_state ${stp} forward_delay ${delay}`,
        `addr add ${gwCidr} dev ${br}`,
        `link set dev ${br} up`,
      ],
      undo: [`link del dev ${br}`],
    });
  } else {
    const lines: string[] = [];
    const undo: string[] = [];
    const why: string[] = [];
    if (link.stpState !== stp || link.forwardDelay !== delay) {
      // With STP on, the kernel refuses a delay outside 2-30 s: set the delay while STP is off.
      lines.push(
        ...(link.stpState !== 0 ? [`link set dev ${br} type bridge stp_state 0`] : []),
        `link set dev ${br} type bridge forward_delay ${delay}`,
        ...(stp ? [`link set dev ${br} type bridge stp_state 1`] : []),
      );
      why.push(
        `stp ${link.stpState ?? '?'} forward delay ${link.forwardDelay ?? '?'}, expected ${stp} and ${delay}`,
      );
    }
    if (def.mtu !== undefined && link.mtu !== def.mtu) {
      lines.push(`link set dev ${br} mtu ${def.mtu}`);
      undo.push(`link set dev ${br} mtu ${link.mtu}`);
      why.push(`mtu ${link.mtu}, expected ${def.mtu}`);
    }
    if (link.address !== def.mac) {
      lines.push(`link set dev ${br} address ${def.mac}`);
      undo.push(`link set dev ${br} address ${link.address}`);
      why.push(`mac ${link.address}, expected ${def.mac}`);
    }
    const mine = obs.addrs.filter((a) => a.ifname === br);
    for (const a of mine) {
      if (a.cidr !== gwCidr) {
        lines.push(`addr del ${a.cidr} dev ${br}`);
        undo.push(`addr add ${a.cidr} dev ${br}`);
        why.push(`stray address ${a.cidr}`);
      }
    }
    if (!mine.some((a) => a.cidr === gwCidr)) {
      lines.push(`addr add ${gwCidr} dev ${br}`);
      undo.push(`addr del ${gwCidr} dev ${br}`);
      why.push(`address ${gwCidr} missing`);
    }
    if (!link.flags.includes('UP')) {
      lines.push(`link set dev ${br} up`);
      undo.push(`link set dev ${br} down`);
      why.push('link is down');
    }
    if (lines.length > 0)
      steps.push({ kind: 'ip', why: `repair bridge ${br}: ${why.join(', ')}`, lines, undo: undo.reverse() });
  }

  for (const [key, value] of Object.entries(driver.sysctls(def))) {
    if (obs.sysctls.get(key) !== value)
      steps.push({ kind: 'sysctl', why: `${key} is ${obs.sysctls.get(key) ?? '?'}`, key, value });
  }

  steps.push(...planPorts(ports, br, obs, def.mtu));

  const intent = driver.firewall(def, dnat, peerBridges);
  const notes: string[] = [];
  if (intent.offload && obs.fw.flowtableSupport === false)
    notes.push(
      `this kernel has no nftables flowtables (nf_flow_table); network "${def.name}" runs without flow offload`,
    );
  const fw = ctx.firewall.planNetwork(intent, applied?.firewall, obs.fw);
  if (fw.script !== '')
    steps.push({
      kind: 'nft',
      why: fw.reasons.join('; ') || 'firewall rules',
      script: fw.script,
      undo: fw.undo,
    });

  const files = dnsmasqFiles(def, ctx.paths, ports);
  let confChanged = false;
  let hostsChanged = false;
  for (const [path, content] of files) {
    if (obs.files.get(path) !== content) {
      steps.push({
        kind: 'write',
        why: obs.files.get(path) == null ? 'missing' : 'content differs',
        path,
        content,
        ...(path === ctx.paths.leaseHook(def.name) ? { mode: 0o755 } : {}),
      });
      if (path === ctx.paths.dnsmasqConf(def.name)) confChanged = true;
      else if (path === ctx.paths.leaseHook(def.name)) continue;
      else hostsChanged = true;
    }
  }
  const confFile = ctx.paths.dnsmasqConf(def.name);
  const pid = runningDnsmasq(applied, obs, confFile);
  const running = pid !== undefined;
  const restart = confChanged || opts.restartDnsmasq === true;
  if (running && restart) {
    steps.push({
      kind: 'dnsmasq-stop',
      why: confChanged ? 'its configuration changed' : 'its bridge was re-created',
      pid,
    });
  }
  if (!running || restart) {
    steps.push({
      kind: 'dnsmasq-start',
      why: running ? 'restart' : 'not running',
      confFile,
      pidFile: ctx.paths.dnsmasqPid(def.name),
      leaseFile: ctx.paths.leaseFile(def.name),
    });
  } else if (hostsChanged) {
    steps.push({ kind: 'dnsmasq-reload', why: 'host reservations changed', pid });
  }
  const action = applied?.state === 'active' ? 'update' : 'start';
  return {
    plan: { network: def.name, action, steps, ...(notes.length ? { notes } : {}) },
    firewall: fw.applied,
  };
}

/**
 * Plans the taps of a network's ports: created if missing (persistent, vnet_hdr for virtio), MAC
 * fe:…, plugged into `bridge` (null: the network is stopped, the tap waits unplugged), the
 * network's MTU if it sets one, and the link state the user asked for.
 */
export function planPorts(
  ports: PortDef[],
  bridge: string | null,
  obs: Pick<Observed, 'links'>,
  mtu?: number,
): Step[] {
  const steps: Step[] = [];
  for (const p of ports) {
    // libvirt creates, plugs and removes the taps of libvirt ports: only their reservations are kvmnet's.
    if (p.tap === 'libvirt') continue;
    const link = obs.links.get(p.name);
    const mac = tapMac(p.mac);
    const lines: string[] = [];
    const undo: string[] = [];
    const why: string[] = [];
    if (!link) {
      lines.push(`tuntap add dev ${p.name} mode tap vnet_hdr`, `link set dev ${p.name} address ${mac}`);
      undo.push(`link del dev ${p.name}`);
      why.push('tap missing');
    } else if (link.address !== mac) {
      lines.push(`link set dev ${p.name} address ${mac}`);
      undo.push(`link set dev ${p.name} address ${link.address}`);
      why.push(`mac ${link.address}, expected ${mac}`);
    }
    // The network's MTU (libvirt sets its taps' MTU to the network's too).
    if (mtu !== undefined && link?.mtu !== mtu) {
      lines.push(`link set dev ${p.name} mtu ${mtu}`);
      if (link) undo.push(`link set dev ${p.name} mtu ${link.mtu}`);
      if (link) why.push(`mtu ${link.mtu}, expected ${mtu}`);
    }
    if (bridge !== null && link?.master !== bridge) {
      lines.push(`link set dev ${p.name} master ${bridge}`);
      if (link)
        undo.push(
          link.master ? `link set dev ${p.name} master ${link.master}` : `link set dev ${p.name} nomaster`,
        );
      why.push(
        link?.master ? `plugged into ${link.master}, expected ${bridge}` : `not plugged into ${bridge}`,
      );
    }
    // Bridge port isolation (a fresh or re-plugged port starts with it off).
    if (bridge !== null) {
      const iso = link?.master === bridge && link.isolated === true;
      if ((p.isolated === true) !== iso) {
        const want = p.isolated === true ? 'on' : 'off';
        lines.push(`link set dev ${p.name} type bridge_slave isolated ${want}`);
        if (link?.master === bridge) {
          undo.push(`link set dev ${p.name} type bridge_slave isolated ${iso ? 'on' : 'off'}`);
          why.push(`isolation ${iso ? 'on' : 'off'}, expected ${want}`);
        }
      }
    }
    const isUp = link?.flags.includes('UP') ?? false;
    if ((p.link === 'up') !== isUp) {
      lines.push(`link set dev ${p.name} ${p.link}`);
      if (link) undo.push(`link set dev ${p.name} ${isUp ? 'up' : 'down'}`);
      if (link) why.push(`link ${isUp ? 'up' : 'down'}, expected ${p.link}`);
    }
    if (lines.length)
      steps.push({
        kind: 'ip',
        why: `port ${p.vm}/net${p.index} (${p.name}): ${why.join(', ') || 'create'}`,
        lines,
        undo: undo.reverse(),
      });
  }
  return steps;
}

/** Plans a running (or half-started) network out of existence, from its applied record. */
export function planStop(
  applied: AppliedNetwork,
  obs: Observed,
  othersRemain: boolean,
  ctx: PlanContext,
): NetworkPlan {
  const steps: Step[] = [];
  const pid = applied.dnsmasq ? runningDnsmasq(applied, obs, applied.dnsmasq.confFile) : undefined;
  if (pid !== undefined) {
    steps.push({ kind: 'dnsmasq-stop', why: 'network stops', pid });
  }
  const fw = ctx.firewall.planRemove(applied.firewall, obs.fw, othersRemain);
  if (fw.script !== '') steps.push({ kind: 'nft', why: fw.reasons.join('; '), script: fw.script, undo: '' });
  const link = obs.links.get(applied.bridge);
  if (applied.uplink) {
    const up = applied.uplink;
    const onUplink = new Set(obs.addrs.filter((a) => a.ifname === up.ifname).map((a) => a.cidr));
    if (
      link ||
      up.addrs.some((a) => !onUplink.has(a.cidr)) ||
      obs.links.get(up.ifname)?.master !== undefined
    ) {
      steps.push({
        kind: 'ip',
        why: `give ${up.ifname} back its addresses, routes and state; delete bridge ${applied.bridge}`,
        lines: restoreLines(applied.bridge, up),
        undo: [],
        force: true,
      });
    }
  } else if (applied.hostBridge) {
    // The host's own bridge stays; the network's ports are unplugged from it (stopLocked adds them).
  } else if (link && link.kind === 'bridge') {
    steps.push({
      kind: 'ip',
      why: `delete bridge ${applied.bridge}`,
      lines: [`link del dev ${applied.bridge}`],
      undo: [],
    });
  }
  if (obs.files.get(applied.runDir) !== null) {
    steps.push({ kind: 'remove', why: 'generated files of the network', path: applied.runDir });
  }
  return { network: applied.network, action: 'stop', steps };
}
