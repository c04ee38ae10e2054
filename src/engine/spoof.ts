// Anti-spoofing in the engine: which ports table bridge kvmnet checks (the ports of running
// networks with spoof-check on), the step that brings the table in line, and how that step joins a
// plan (in the same `nft -f` transaction as the plan's table inet kvmnet changes, when it has any).
import type { Host } from '../host/host.js';
import { isL3, type NetworkDef } from '../model/network.js';
import { spoofCheckOf } from '../model/port.js';
import {
  BRIDGE_TABLE,
  bridgeDiff,
  bridgeElementDelta,
  expectedBridgeTable,
  renderElementDelta,
  parseBridgeTable,
  renderBridgeUpdate,
  type BridgeLease,
  type BridgeObserved,
  type BridgePort,
} from '../render/nft-bridge.js';
import { readLeases } from './leases.js';
import type { Paths } from './paths.js';
import type { Step } from './plan.js';
import type { StateData } from './store.js';

/** The checked ports of the given (running) networks, with what their networks protect. */
export function bridgePorts(state: StateData, running: Set<string>): BridgePort[] {
  const out: BridgePort[] = [];
  const all = Object.values(state.ports);
  // Per network (once, shared by its ports): the gateway and every reservation, the set prot_<bridge>.
  const prot = new Map<string, { protected: string[] }>();
  const l3Of = (def: NetworkDef, gateway: string): { protected: string[] } => {
    let x = prot.get(def.name);
    if (!x) {
      const addrs = [
        gateway,
        ...all.filter((o) => o.network === def.name && o.ip !== undefined).map((o) => o.ip ?? ''),
        ...(def.dhcpHosts ?? []).map((h) => h.ip),
      ];
      x = { protected: [...new Set(addrs)].sort() };
      prot.set(def.name, x);
    }
    return x;
  };
  for (const p of all) {
    const def: NetworkDef | undefined = state.networks[p.network];
    if (!def || !running.has(p.network) || !spoofCheckOf(p) || p.name === '') continue;
    const bp: BridgePort = { tap: p.name, mac: p.mac, bridge: def.bridge };
    if (p.ip !== undefined) bp.ip = p.ip;
    if (isL3(def)) bp.l3 = l3Of(def, def.gateway);
    out.push(bp);
  }
  return out;
}

/** Current leases (from the lease files) of the running networks with DHCP. */
async function currentLeases(paths: Paths, state: StateData, running: Set<string>): Promise<BridgeLease[]> {
  const leases: BridgeLease[] = [];
  const now = Date.now();
  for (const n of running) {
    if (!state.networks[n]?.dhcp) continue;
    for (const l of await readLeases(paths.leaseFile(n))) {
      if (l.expiry === null || Date.parse(l.expiry) > now) leases.push({ mac: l.mac, ip: l.ip });
    }
  }
  return leases;
}

/**
 * The step that makes table bridge kvmnet right for these networks, or null when it is: only what
 * differs (a port's elements, a network's chain), or the whole table when it is missing or
 * its base objects are wrong.
 */
export async function planBridgeTable(
  host: Host,
  paths: Paths,
  state: StateData,
  running: Set<string>,
  /** The table as an observation just listed it (`Observed.bridgeTable`); listed here when absent. */
  listed?: unknown,
): Promise<Extract<Step, { kind: 'nft' }> | null> {
  const obs = parseBridgeTable(listed === undefined ? await host.nftListTable('bridge', 'kvmnet') : listed);
  return bridgeStep(paths, state, running, obs);
}

/** The step that brings a table seen as `obs` in line with the checked ports of `running`, or null. */
async function bridgeStep(
  paths: Paths,
  state: StateData,
  running: Set<string>,
  obs: BridgeObserved,
): Promise<Extract<Step, { kind: 'nft' }> | null> {
  const ports = bridgePorts(state, running);
  const diff = bridgeDiff(ports, obs);
  if (diff.why.length === 0) return null;
  // Leases come back from the lease files: a rebuilt table starts with the sets dnsmasq's hook
  // filled, and so does a port without a reservation that is added.
  const needLeases = diff.whole === 'rebuild' || diff.added.some((p) => p.ip === undefined);
  const leases = needLeases ? await currentLeases(paths, state, running) : [];
  return {
    kind: 'nft',
    why: diff.why.join('; '),
    script: renderBridgeUpdate(ports, diff, leases),
    // A table this step creates goes on rollback; one it changes is brought in line by the next apply.
    undo: obs.table ? '' : `table ${BRIDGE_TABLE}\ndelete table ${BRIDGE_TABLE}\n`,
  };
}

/**
 * Table bridge kvmnet's change when the running networks go from `before` to `after`, planned from
 * the stored state alone: diffed against the table as applied for `before` (expectedBridgeTable),
 * not against a listing. A table that is not as applied shows when the transaction runs (a chain,
 * set or element it deletes is missing) or is left to `check`, as after a port delta.
 */
export async function planBridgeFromRecord(
  paths: Paths,
  state: StateData,
  before: Set<string>,
  after: Set<string>,
): Promise<Extract<Step, { kind: 'nft' }> | null> {
  return bridgeStep(paths, state, after, expectedBridgeTable(bridgePorts(state, before)));
}

/**
 * Table bridge kvmnet's change for one port added or removed on a running network (`before` and
 * `after` differ in that port alone), from the stored state, without listing the table: the
 * elements that the full plan (planBridgeTable) would add and delete when the table is as applied.
 * Null when more than elements changes (the table, a network's chain or prot_ set comes or goes).
 * Whether the table is as applied shows when the transaction runs: an element to delete that is
 * missing, or a chain or set to add to that is gone, fails it as a whole.
 */
export async function planBridgePortDelta(
  paths: Paths,
  before: StateData,
  after: StateData,
  running: Set<string>,
  why: string,
): Promise<{ step: Extract<Step, { kind: 'nft' }> | null } | null> {
  const d = bridgeElementDelta(bridgePorts(before, running), bridgePorts(after, running));
  if (!d) return null;
  if (d.elemAdd.length === 0 && d.elemDel.length === 0) return { step: null };
  const leases = d.added.some((p) => p.ip === undefined) ? await currentLeases(paths, after, running) : [];
  const { script, undo } = renderElementDelta(d, leases);
  return { step: { kind: 'nft', why, script, undo } };
}

/**
 * Joins the step to a plan: into the plan's nft transaction if it has one, else before the
 * first dnsmasq step (so the lease hook finds the table when dnsmasq starts).
 */
export function joinBridgeStep(steps: Step[], b: Extract<Step, { kind: 'nft' }> | null): void {
  if (!b) return;
  const nft = steps.find((s): s is Extract<Step, { kind: 'nft' }> => s.kind === 'nft');
  if (nft) {
    nft.script += b.script;
    nft.undo = b.undo + nft.undo;
    nft.why = `${nft.why}; ${b.why}`;
    return;
  }
  const at = steps.findIndex((s) => s.kind === 'dnsmasq-start' || s.kind === 'write' || s.kind === 'remove');
  if (at < 0) steps.push(b);
  else steps.splice(at, 0, b);
}
