// Observation: one snapshot of the host state kvmnet plans against (links, addresses, routes,
// kvmnet's nft tables, sysctls, generated files, recorded processes).
import type { FirewallBackend } from '../firewall/backend.js';
import type { Host, NetState } from '../host/host.js';
import { formatCidr, networkOf, parseCidr } from '../model/ipv4.js';
import type { HostUsage, NetworkDef } from '../model/network.js';
import { exists, readOrNull } from './fsutil.js';
import type { Paths } from './paths.js';
import { BRIDGE_TABLE } from '../render/nft-bridge.js';
import { TABLE } from '../render/nft.js';
import { dnsmasqFiles, type Observed, type Step } from './plan.js';
import type { AppliedNetwork } from './store.js';

export const SYSCTLS = ['net.ipv4.ip_forward'];

export async function observe(
  host: Host,
  firewall: FirewallBackend,
  paths: Paths,
  scope: { defs: NetworkDef[]; applied: AppliedNetwork[] },
  /** A listing of links, addresses and routes already under way (started with nothing changed since). */
  net?: Promise<NetState>,
): Promise<Observed> {
  return {
    ...(await observeKernel(host, firewall, scope, net)),
    ...(await observeLocal(host, paths, scope)),
  };
}

/** What the kernel reports (links, addresses, routes, kvmnet's nft tables), without files or processes. */
export type KernelView = Omit<Observed, 'sysctls' | 'files' | 'procs'>;

/** `Observed.bridgeTable` of a plan made from the applied records: the table was not listed. */
export const NOT_LISTED = Symbol('table bridge kvmnet not listed');

/**
 * An observation for starting `scope`'s one network, which has no record, with kvmnet's nft tables
 * taken from the running networks' applied records (`recorded`) instead of listed: one ip process
 * and the files. See FirewallBackend.fromRecords; table bridge kvmnet's change is planned from the
 * stored state (planBridgeFromRecord).
 */
export async function observeFromRecords(
  host: Host,
  firewall: FirewallBackend,
  paths: Paths,
  scope: { defs: NetworkDef[]; applied: AppliedNetwork[] },
  recorded: AppliedNetwork[],
  /** As for observe. */
  netState?: Promise<NetState>,
): Promise<Observed> {
  const [net, fw, local] = await Promise.all([
    netState ?? host.netState(),
    firewall.fromRecords(
      recorded.map((r) => r.firewall),
      { probe: plansNat(scope) },
    ),
    observeLocal(host, paths, scope),
  ]);
  return { ...netView(net), fw, bridgeTable: NOT_LISTED, ...local };
}

/**
 * The kernel's part of an observation: one ip process and the two nft listings, side by side
 * (spawning them is most of the cost). `rescope` completes it with files and processes.
 */
async function observeKernel(
  host: Host,
  firewall: FirewallBackend,
  scope: { defs: NetworkDef[] },
  netState?: Promise<NetState>,
): Promise<KernelView> {
  const [net, fw, bridgeTable] = await Promise.all([
    netState ?? host.netState(),
    firewall.observe({ probe: plansNat(scope) }),
    host.nftListTable('bridge', 'kvmnet'),
  ]);
  return { ...netView(net), fw, bridgeTable };
}

/**
 * `base` with the parts a plan changed listed again (a start that touched no port re-lists
 * neither every tap nor table bridge kvmnet); with nothing changed, no process runs.
 */
export async function relist(
  host: Host,
  firewall: FirewallBackend,
  scope: { defs: NetworkDef[] },
  base: KernelView,
  changed: KernelChanges,
  opts: {
    trustRecorded?: boolean;
    /** The links, addresses and routes as listed after the plan's last ip step (Host.ipBatchListed). */
    net?: NetState;
  } = {},
): Promise<KernelView> {
  // Parts the plan took from the applied records (a start's fast path) are listed, unless the
  // caller takes its committed transaction as their verification (trustRecorded): then they stay
  // as the records have them, marked so (fw.fromRecords, NOT_LISTED).
  const recordedFw = base.fw.fromRecords === true;
  const recordedBridge = base.bridgeTable === NOT_LISTED;
  const listFw = recordedFw ? !opts.trustRecorded : changed.inet;
  const listBridge = recordedBridge ? !opts.trustRecorded : changed.bridge;
  const [net, fw, bridgeTable] = await Promise.all([
    changed.ip ? (opts.net ?? host.netState()) : undefined,
    listFw ? firewall.observe({ probe: plansNat(scope) }) : base.fw,
    listBridge ? host.nftListTable('bridge', 'kvmnet') : base.bridgeTable,
  ]);
  const { links, addrs, routes } = net ? netView(net) : base;
  return { links, addrs, routes, fw, bridgeTable };
}

function netView(net: Awaited<ReturnType<Host['netState']>>): Pick<KernelView, 'links' | 'addrs' | 'routes'> {
  return { links: new Map(net.links.map((l) => [l.ifname, l])), addrs: net.addrs, routes: net.routes };
}

/** Which parts of the kernel's state a plan changes: links/addresses/routes, and each nft table. */
export interface KernelChanges {
  ip: boolean;
  inet: boolean;
  bridge: boolean;
}

/** What a plan's steps change in the kernel (its ip steps, and the tables its nft scripts name). */
export function kernelChanges(steps: Step[]): KernelChanges {
  const nft = steps.flatMap((s) => (s.kind === 'nft' ? [s.script] : [])).join('');
  return {
    ip: steps.some((s) => s.kind === 'ip'),
    inet: nft.includes(TABLE),
    bridge: nft.includes(BRIDGE_TABLE),
  };
}

/** The flowtable probe only matters when a nat network's rules are planned (scope.defs). */
function plansNat(scope: { defs: NetworkDef[] }): boolean {
  return scope.defs.some((d) => d.mode === 'nat');
}

/**
 * `base` (an observation of links, addresses, routes and nft tables made since the last host
 * change) with the files, processes and sysctls of another scope: no process is run.
 */
export async function rescope(
  host: Host,
  firewall: FirewallBackend,
  paths: Paths,
  base: KernelView,
  scope: { defs: NetworkDef[]; applied: AppliedNetwork[] },
): Promise<Observed> {
  // A nat network needs the flowtable answer, which `base` may not have asked for.
  const probe = plansNat(scope) && base.fw.flowtableSupport === undefined;
  const fw = probe ? await firewall.observe({ probe: true }) : base.fw;
  const { links, addrs, routes, bridgeTable } = base;
  return { links, addrs, routes, bridgeTable, fw, ...(await observeLocal(host, paths, scope)) };
}

/** What an observation reads from files and /proc: sysctls, generated files, recorded processes. */
export async function observeLocal(
  host: Host,
  paths: Paths,
  scope: { defs: NetworkDef[]; applied: AppliedNetwork[] },
): Promise<Pick<Observed, 'sysctls' | 'files' | 'procs'>> {
  // Every read is independent: they run side by side (a bulk start reads a few per network).
  const sysctls = new Map(await Promise.all(SYSCTLS.map(async (k) => [k, await host.sysctlGet(k)] as const)));
  const paths_ = scope.defs.flatMap((def) => [...dnsmasqFiles(def, paths, []).keys()]);
  const files = new Map<string, string | null>(
    await Promise.all(paths_.map(async (p) => [p, await readOrNull(p)] as const)),
  );
  const runDirs = await Promise.all(
    scope.applied.map(async (rec) => [rec.runDir, (await exists(rec.runDir)) ? '' : null] as const),
  );
  for (const [dir, v] of runDirs) files.set(dir, v);
  // The recorded pid, and the one in dnsmasq's pid file (after a crash it may be the only trace of
  // the process: dnsmasq writes that file itself).
  const pidLists = await Promise.all(
    scope.applied.map(async (rec) => {
      const pidFile = rec.dnsmasq?.pidFile;
      const fromFile = pidFile === undefined ? NaN : Number((await readOrNull(pidFile))?.trim());
      return [rec.dnsmasq?.pid, Number.isInteger(fromFile) && fromFile > 0 ? fromFile : undefined];
    }),
  );
  const pids = [...new Set(pidLists.flat().filter((p): p is number => p !== undefined))];
  const procs = new Map(
    await Promise.all(pids.map(async (pid) => [pid, await host.processArgs(pid)] as const)),
  );
  return { sysctls, files, procs };
}

/** What the host uses outside kvmnet's own bridges (for overlap and name checks). */
export function hostUsage(
  obs: Pick<Observed, 'links' | 'addrs' | 'routes'>,
  ownBridges: Set<string>,
): HostUsage {
  const prefixes: HostUsage['prefixes'] = [];
  for (const a of obs.addrs) {
    if (ownBridges.has(a.ifname)) continue;
    const c = parseCidr(a.cidr);
    if (c)
      prefixes.push({
        cidr: formatCidr({ addr: networkOf(c), prefix: c.prefix }),
        where: `address ${a.cidr} on ${a.ifname}`,
      });
  }
  for (const r of obs.routes) {
    if (r.dst === 'default' || (r.dev !== undefined && ownBridges.has(r.dev))) continue;
    const cidr = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    prefixes.push({
      cidr,
      where: `route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`,
    });
  }
  const links = [...obs.links.keys()].filter((l) => !ownBridges.has(l));
  return { prefixes, links };
}
