// The engine: every operation (define, start, stop, up, down, apply, ...) as
// lock → load → observe → plan → (dry-run: return the plan) → apply with rollback → verify.
// The CLI and, later, the daemon are thin layers over this class.
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
// The YAML and XML libraries load only for the commands that need them (the daemon stays small).
import type { PersistFile, PersistFormat, PersistInput } from '../render/persist.js';
import type { AppliedFirewall, FirewallBackend } from '../firewall/backend.js';
import { NftablesBackend } from '../firewall/nftables.js';
import { Host, onPath, type LinkInfo, type NetState } from '../host/host.js';
import { driverFor } from '../drivers/registry.js';
import { failure, inputError, KvmnetError, own } from '../model/errors.js';
import { formatCidr, formatIpv4, overlaps, parseCidr, parseIpv4 } from '../model/ipv4.js';
import {
  buildForward,
  expandForward,
  forwardId,
  parsePortRange,
  portsText,
  targetAddress,
  type DnatEntry,
  type ForwardDef,
  type ForwardInput,
} from '../model/forward.js';
import {
  buildNetwork,
  checkPeers,
  peerBridgesOf,
  isL3,
  l3,
  diffNetworks,
  pickBridgeName,
  type HostUsage,
  type NetworkDef,
  type NetworkInput,
} from '../model/network.js';
import {
  exists,
  firstUntraversable,
  makeDirs,
  readOrNull,
  removeIfEmpty,
  removePath,
  writeAtomic,
  removeStaleTemps,
} from './fsutil.js';
import { stepApplied } from './crash.js';
import { acquireLock, TurnQueue } from './lock.js';
import {
  hostUsage,
  kernelChanges,
  observe,
  observeLocal,
  NOT_LISTED,
  observeFromRecords,
  relist,
  rescope,
  type KernelView,
} from './observe.js';
import { Paths } from './paths.js';
import {
  dnsmasqFiles,
  planStart,
  planStop,
  runningDnsmasq,
  type NetworkPlan,
  type Observed,
  type Step,
} from './plan.js';
import { Reverter } from './reverter.js';
import { Store, type AppliedNetwork, type StateData } from './store.js';
import {
  buildPort,
  checkReservation,
  isLibvirtPort,
  spoofCheckOf,
  nextIndex,
  portId,
  portKey,
  tapText,
  validateVmName,
  DEFAULT_MODEL,
  type TapOwner,
  qemuArgs,
  tapMac,
  type LinkState,
  type PortDef,
  type PortInput,
} from '../model/port.js';
import { readLeases, type Lease } from './leases.js';
import type { DomainInterface } from '../model/domain.js';
import { planPorts } from './plan.js';
import { joinBridgeStep, planBridgeFromRecord, planBridgePortDelta, planBridgeTable } from './spoof.js';
import { normalizeMac } from '../model/mac.js';
import { compareNames, compareNatural } from '../model/order.js';
import { bridgedDrift, checkTarget, restoreLines, snapshotUplink, takeoverLines } from './bridged.js';
import { dnatElements, type ElementSpec } from '../render/nft.js';

/** How startLocked starts one network. */
interface StartOpts {
  confirmTimeout?: number;
  restartDnsmasq?: boolean;
  /** An observation made for this network since the last host change (see observeNetwork). */
  pre?: Observed;
  chain?: StartChain;
  /** Observe the host (the fast path from the records failed, see observeFromRecord). */
  observed?: boolean;
}

/**
 * Starting many networks in a row (`up`, `apply`): the observation that verified one start is the
 * host as the next start finds it, so the next one only re-reads its own files and processes
 * (rescope) instead of listing links, addresses, routes and nft tables again.
 */
interface StartChain {
  after?: Observed;
}

export interface EngineOptions {
  paths: Paths;
  host?: Host;
  firewall?: FirewallBackend;
  /** Progress notes for slow steps (the CLI prints them on stderr). */
  note?: (msg: string) => void;
}

export interface DriftSession {
  observe(defs: NetworkDef[], applied: AppliedNetwork[]): Promise<Observed>;
  /** A network's reconcile (only the differences), as `net start` of a running network. */
  start(state: StateData, name: string, dryRun: boolean, restartDnsmasq: boolean): Promise<NetworkPlan[]>;
  /** Runs a plan's steps, rolling back on failure. */
  run(plan: NetworkPlan): Promise<void>;
}

export type NetworkState = 'active' | 'inactive' | 'failed';

export interface NetworkStatus extends NetworkDef {
  state: NetworkState;
}

export interface NetworkInfo extends NetworkStatus {
  dnsmasq: { pid: number; running: boolean } | null;
  leaseFile: string;
  confFile: string;
}

export interface DefinitionChange {
  network: string;
  /** Set when the change is to a port forward (its id) rather than to the network itself. */
  forward?: string;
  change: 'define' | 'undefine' | 'update';
  details: string[];
}

export interface OpResult {
  dryRun: boolean;
  /** Changes to stored definitions. */
  definitions: DefinitionChange[];
  /** Host changes, one plan per network touched. */
  plans: NetworkPlan[];
  /** Things the user should know (e.g. a subnet picked because the stock one is taken). */
  notes: string[];
}

const DEFAULT_CANDIDATES = Array.from({ length: 133 }, (_, i) => `192.168.${122 + i}.0/24`);

/** A planned port delta (Engine.planPortDelta): its plan and what verifyPortDelta reads back. */
interface PortDelta {
  plan: NetworkPlan;
  port: PortDef;
  adding: boolean;
  def: NetworkDef;
  /** The reservation files as written: path, content. */
  files: Array<[string, string]>;
}

export class Engine {
  readonly paths: Paths;
  readonly host: Host;
  readonly firewall: FirewallBackend;
  readonly store: Store;
  private readonly note: (msg: string) => void;
  /** This process's operations take the state lock one after another (the daemon serves several). */
  private readonly turns = new TurnQueue();

  constructor(opts: EngineOptions) {
    this.paths = opts.paths;
    this.host = opts.host ?? new Host();
    this.firewall = opts.firewall ?? new NftablesBackend(this.host);
    this.store = new Store(this.paths);
    this.note = opts.note ?? (() => {});
  }

  private async locked<T>(fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
    return this.turns.run(async () => {
      const lock = await acquireLock(this.paths.lockFile, {
        note: this.note,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      });
      try {
        return await fn();
      } finally {
        await lock.release();
      }
    }, timeoutMs);
  }

  private async observeFor(
    defs: NetworkDef[],
    applied: AppliedNetwork[],
    net?: Promise<NetState>,
  ): Promise<Observed> {
    return observe(this.host, this.firewall, this.paths, { defs, applied }, net);
  }

  /** Links, addresses and routes alone (one process): what name and overlap checks need. */
  private async observeHostNet(): Promise<Pick<Observed, 'links' | 'addrs' | 'routes'>> {
    const { links, addrs, routes } = await this.host.netState();
    return { links: new Map(links.map((l) => [l.ifname, l])), addrs, routes };
  }

  /**
   * What a new definition must not collide with (define, apply): the host's addresses, routes and
   * links, kvmnet's running bridges not counted as someone else's; and the applied records, which
   * are read while the links are listed.
   */
  private async definitionUsage(): Promise<{ usage: HostUsage; applied: AppliedNetwork[] }> {
    const [applied, obs] = await Promise.all([this.store.listApplied(), this.observeHostNet()]);
    return {
      usage: { ...hostUsage(obs, Engine.ownBridges(applied)), allLinks: [...obs.links.keys()] },
      applied,
    };
  }

  /** An observation with one network's files and processes, as `startLocked` plans it. */
  private async observeNetwork(def: NetworkDef): Promise<Observed> {
    const applied = await this.store.loadApplied(def.name);
    // A bridged network has no generated files: startBridged observes without its definition.
    const defs = driverFor(def.mode).capabilities.uplink ? [] : [def];
    return this.observeFor(defs, applied ? [applied] : []);
  }

  private static ownBridges(applied: AppliedNetwork[]): Set<string> {
    return new Set(applied.map((a) => a.bridge));
  }

  private static getDef(state: StateData, name: string): NetworkDef {
    const def = own(state.networks, name);
    if (!def) {
      const known = Object.keys(state.networks);
      throw inputError(
        'unknown-network',
        `network "${name}" is not defined`,
        known.length
          ? `defined networks: ${known.join(', ')}`
          : 'define one with `kvmnet net define` or run `kvmnet up`',
      );
    }
    return def;
  }

  // ---- queries -------------------------------------------------------------------------------

  async list(): Promise<NetworkStatus[]> {
    const state = await this.store.load();
    const applied = new Map((await this.store.listApplied()).map((a) => [a.network, a]));
    return Object.values(state.networks)
      .sort((a, b) => compareNames(a.name, b.name))
      .map((d) => ({ ...d, state: stateOf(applied.get(d.name)) }));
  }

  async info(name: string): Promise<NetworkInfo> {
    const state = await this.store.load();
    const def = Engine.getDef(state, name);
    const applied = await this.store.loadApplied(name);
    const pid = applied?.dnsmasq?.pid;
    return {
      ...def,
      state: stateOf(applied),
      dnsmasq: pid === undefined ? null : { pid, running: (await this.host.processArgs(pid)) !== null },
      leaseFile: this.paths.leaseFile(name),
      confFile: this.paths.dnsmasqConf(name),
    };
  }

  async exportDefinitions(): Promise<{ networks: NetworkDef[]; forwards: ForwardDef[] }> {
    const state = await this.store.load();
    return {
      networks: Object.values(state.networks),
      forwards: Object.values(state.forwards).sort(compareForwards),
    };
  }

  // ---- definitions ---------------------------------------------------------------------------

  async define(input: NetworkInput, opts: { dryRun: boolean }): Promise<OpResult & { network: NetworkDef }> {
    return this.locked(async () => {
      const state = await this.store.load();
      if (own(state.networks, input.name)) {
        throw inputError(
          'already-defined',
          `network "${input.name}" is already defined`,
          'pick another name, or `kvmnet net undefine` it first',
        );
      }
      const { usage } = await this.definitionUsage();
      const others = Object.values(state.networks);
      const bridge =
        input.bridge ?? pickBridgeName(new Set([...others.map((o) => o.bridge), ...(usage.allLinks ?? [])]));
      const def = buildNetwork({ ...input, bridge }, { others, host: usage });
      checkPeers([...others, def]);
      const result: OpResult & { network: NetworkDef } = {
        dryRun: opts.dryRun,
        definitions: [{ network: def.name, change: 'define', details: describeDef(def) }],
        plans: [],
        notes: [],
        network: def,
      };
      if (opts.dryRun) return result;
      state.networks[def.name] = def;
      await this.store.save(state);
      return result;
    });
  }

  async undefine(name: string, opts: { force: boolean; dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      Engine.getDef(state, name);
      const applied = await this.store.loadApplied(name);
      const result: OpResult = {
        dryRun: opts.dryRun,
        definitions: [{ network: name, change: 'undefine', details: [] }],
        plans: [],
        notes: [],
      };
      const ports = portsOf(state, name);
      const forwards = forwardsOf(state, name);
      if ((ports.length || forwards.length) && !opts.force) {
        const what = [
          ...(ports.length
            ? [
                `${ports.length} port${ports.length === 1 ? '' : 's'} (${ports.map((p) => portId(p)).join(', ')})`,
              ]
            : []),
          ...(forwards.length
            ? [
                `${forwards.length} forward${forwards.length === 1 ? '' : 's'} (${forwards.map(forwardId).join(', ')})`,
              ]
            : []),
        ];
        throw inputError(
          'network-has-ports',
          `network "${name}" still has ${what.join(' and ')}`,
          'remove them with `kvmnet port del` / `kvmnet forward del`, or pass --force to remove them with the network',
        );
      }
      if (applied) {
        if (!opts.force) {
          throw inputError(
            'network-running',
            `network "${name}" is running`,
            `stop it first with \`kvmnet net stop ${name}\`, or pass --force to stop it`,
          );
        }
        result.plans.push(await this.stopLocked(name, opts.dryRun));
      }
      if (ports.length) result.plans.push(await this.deleteTaps(name, ports, opts.dryRun));
      if (opts.dryRun) return result;
      delete state.networks[name];
      for (const p of ports) delete state.ports[portKey(p)];
      for (const f of forwards) delete state.forwards[forwardId(f)];
      await this.store.save(state);
      await removePath(this.paths.leaseFile(name));
      await removeIfEmpty(this.paths.leasesDir);
      return result;
    });
  }

  async setAutostart(name: string, enabled: boolean, opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      const def = Engine.getDef(state, name);
      const details = def.autostart === enabled ? [] : [`autostart ${def.autostart} -> ${enabled}`];
      const result: OpResult = {
        dryRun: opts.dryRun,
        definitions: details.length ? [{ network: name, change: 'update', details }] : [],
        plans: [],
        notes: [],
      };
      if (!opts.dryRun && details.length) {
        def.autostart = enabled;
        await this.store.save(state);
      }
      return result;
    });
  }

  // ---- runtime -------------------------------------------------------------------------------

  async start(name: string, opts: { dryRun: boolean; confirmTimeout?: number }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      Engine.getDef(state, name);
      const plans = await this.startLocked(state, name, opts.dryRun, {
        ...(opts.confirmTimeout === undefined ? {} : { confirmTimeout: opts.confirmTimeout }),
      });
      return { dryRun: opts.dryRun, definitions: [], plans, notes: plans.flatMap((p) => p.notes ?? []) };
    });
  }

  async stop(name: string, opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      Engine.getDef(state, name);
      return {
        dryRun: opts.dryRun,
        definitions: [],
        plans: [await this.stopLocked(name, opts.dryRun)],
        notes: [],
      };
    });
  }

  /** First run: defines the stock default network. Every run: starts every autostart network. */
  async up(opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      const result: OpResult = { dryRun: opts.dryRun, definitions: [], plans: [], notes: [] };
      if (!state.initialized) {
        if (!state.networks.default) {
          const def = await this.stockDefault(state, result.notes);
          state.networks.default = def;
          result.definitions.push({ network: 'default', change: 'define', details: describeDef(def) });
        }
        state.initialized = true;
        if (!opts.dryRun) await this.store.save(state);
      }
      const autostart = Object.values(state.networks)
        .filter((d) => d.autostart)
        .map((d) => d.name)
        .sort(compareNames);
      result.plans.push(...(await this.startMany(state, autostart, opts.dryRun)));
      result.notes.push(...result.plans.flatMap((p) => p.notes ?? []));
      return result;
    });
  }

  /** Stops every running network; definitions are kept. */
  async down(opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const result: OpResult = { dryRun: opts.dryRun, definitions: [], plans: [], notes: [] };
      const running = (await this.store.listApplied()).map((a) => a.network);
      result.plans.push(...(await this.stopMany(running, opts.dryRun)));
      return result;
    });
  }

  /** Makes the stored definitions equal to `inputs`; running networks follow their new definitions. */
  async apply(
    inputs: NetworkInput[],
    forwardInputs: ForwardInput[],
    opts: { dryRun: boolean },
  ): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      const { usage, applied } = await this.definitionUsage();
      // Interfaces that belong to a stored network (running or not) are not "someone else's".
      usage.links = usage.links.filter((l) => !Object.values(state.networks).some((d) => d.bridge === l));
      const seen = new Set<string>();
      const defs: NetworkDef[] = [];
      const usedBridges = new Set([...inputs.flatMap((i) => (i.bridge ? [i.bridge] : [])), ...usage.links]);
      for (const input of inputs) {
        if (seen.has(input.name))
          throw inputError(
            'duplicate-network',
            `network "${input.name}" appears twice`,
            'keep one definition per name',
          );
        seen.add(input.name);
        let bridge = input.bridge ?? own(state.networks, input.name)?.bridge;
        if (bridge === undefined) {
          bridge = pickBridgeName(usedBridges);
          usedBridges.add(bridge);
        }
        defs.push(buildNetwork({ ...input, bridge }, { others: defs, host: usage }));
      }
      checkPeers(defs);
      const result: OpResult = { dryRun: opts.dryRun, definitions: [], plans: [], notes: [] };
      const next: Record<string, NetworkDef> = {};
      for (const d of defs) {
        next[d.name] = d;
        const old = own(state.networks, d.name);
        if (!old) result.definitions.push({ network: d.name, change: 'define', details: describeDef(d) });
        else {
          const diff = diffNetworks(old, d);
          if (diff.length) result.definitions.push({ network: d.name, change: 'update', details: diff });
        }
      }
      const removed = Object.keys(state.networks).filter((n) => !next[n]);
      for (const n of removed) {
        const ports = portsOf(state, n);
        if (ports.length) {
          throw inputError(
            'network-has-ports',
            `the file leaves out network "${n}", which still has ports (${ports.map((p) => portId(p)).join(', ')})`,
            'remove its ports with `kvmnet port del` first, or keep the network in the file',
          );
        }
      }
      for (const n of removed) result.definitions.push({ network: n, change: 'undefine', details: [] });

      // Forwards: the file's list is the whole set (validated against the new networks).
      const forwards: Record<string, ForwardDef> = {};
      for (const input of forwardInputs) {
        const net = next[input.network];
        if (!net) {
          throw inputError(
            'unknown-network',
            `forward ${input.proto} ${input.ports} names network "${input.network}", which the file does not define`,
            'define the network in the file or fix the name',
          );
        }
        const f = buildForward(input, {
          net,
          allowed: driverFor(net.mode).capabilities.forwards,
          ports: Object.values(state.ports),
          forwards: Object.values(forwards),
        });
        if (f.hostIp !== undefined) await this.checkHostIp({ ...state, networks: next }, f.hostIp);
        forwards[forwardId(f)] = f;
      }
      const touched = new Set<string>();
      const described = (f: ForwardDef): string[] => [
        forwardView({ ...state, networks: next }, f).summary,
        ...(f.description ? [f.description] : []),
      ];
      for (const [id, f] of Object.entries(forwards)) {
        const old = own(state.forwards, id);
        if (old && JSON.stringify(old) === JSON.stringify(f)) continue;
        result.definitions.push({
          network: f.network,
          forward: id,
          change: old ? 'update' : 'define',
          details: described(f),
        });
        touched.add(f.network);
        if (old) touched.add(old.network);
      }
      for (const [id, f] of Object.entries(state.forwards)) {
        if (own(forwards, id)) continue;
        result.definitions.push({ network: f.network, forward: id, change: 'undefine', details: [] });
        touched.add(f.network);
      }
      if (result.definitions.length === 0) return result;

      const running = new Set(applied.map((a) => a.network));
      result.plans.push(
        ...(await this.stopMany(
          removed.filter((n) => running.has(n)),
          opts.dryRun,
        )),
      );
      const newState: StateData = { ...state, networks: next, forwards };
      if (!opts.dryRun) await this.store.save(newState);
      for (const c of result.definitions) if (c.change === 'update' && !c.forward) touched.add(c.network);
      const restart = [...touched].filter((n) => running.has(n) && next[n]).sort();
      result.plans.push(...(await this.startMany(newState, restart, opts.dryRun)));
      if (!opts.dryRun) {
        for (const n of removed) await removePath(this.paths.leaseFile(n));
      }
      result.notes.push(...result.plans.flatMap((p) => p.notes ?? []));
      return result;
    });
  }

  // ---- persistence --------------------------------------------------------------------------

  /**
   * The files that make a bridged network survive a reboot in the host's own network system's
   * format. From the uplink as recorded at start when the network runs, else as the uplink is now.
   * With `write`, writes them under `root` (default /), each atomically.
   */
  async persist(
    name: string,
    format: PersistFormat,
    opts: { write: boolean; root: string },
  ): Promise<{ files: PersistFile[]; written: string[] }> {
    const state = await this.store.load();
    const def = Engine.getDef(state, name);
    if (!driverFor(def.mode).capabilities.uplink) {
      throw inputError(
        'not-bridged',
        `network "${name}" is ${def.mode}: persist writes the host configuration of bridged networks`,
        `${def.mode} networks come back with \`kvmnet up\` at boot (see the systemd unit in the README)`,
      );
    }
    if (def.uplink === undefined) {
      throw inputError(
        'not-bridged',
        `network "${name}" joins host bridge ${def.bridge}, which the host's own configuration owns`,
        'nothing to persist: kvmnet does not change the host bridge',
      );
    }
    const applied = await this.store.loadApplied(name);
    let snap = applied?.uplink;
    if (!snap) {
      const obs = await this.observeHostNet();
      const link = obs.links.get(def.uplink ?? '');
      if (!link)
        throw inputError(
          'uplink-missing',
          `uplink ${def.uplink ?? '?'} of "${name}" does not exist on this host`,
          'name an existing NIC; see `ip link`',
        );
      snap = snapshotUplink(link, obs.addrs, obs.routes);
    }
    const dynamic = snap.addrs.some((a) => a.dynamic);
    const input: PersistInput = {
      bridge: def.bridge,
      uplink: snap.ifname,
      mac: snap.mac,
      dhcp: dynamic,
      addresses: dynamic ? [] : snap.addrs.map((a) => a.cidr),
      // With DHCP the routes come from the lease.
      routes: dynamic
        ? []
        : snap.routes.map((r) => ({
            dst: r.dst,
            ...(r.gateway ? { via: r.gateway } : {}),
            ...(r.metric !== undefined ? { metric: r.metric } : {}),
          })),
      ...(snap.mtu && snap.mtu !== 1500 ? { mtu: snap.mtu } : {}),
    };
    const { renderPersist } = await import('../render/persist.js');
    const files = renderPersist(format, input);
    const written: string[] = [];
    if (opts.write) {
      for (const f of files) {
        const target = join(opts.root, f.path);
        await writeAtomic(target, f.content, f.mode);
        await chmod(target, f.mode);
        written.push(target);
      }
    }
    return { files, written };
  }

  // ---- ports ---------------------------------------------------------------------------------

  async portList(network?: string): Promise<PortView[]> {
    const state = await this.store.load();
    if (network !== undefined) Engine.getDef(state, network);
    return Object.values(state.ports)
      .filter((p) => network === undefined || p.network === network)
      .sort((a, b) => compareNatural(a.name, b.name))
      .map(portView);
  }

  /** Adds a port: its tap is created now (plugged in if the network runs), its reservation served at once. */
  async portAdd(input: PortInput, opts: { dryRun: boolean }): Promise<OpResult & { port: PortView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      const net = Engine.getDef(state, input.network);
      const same = Engine.identicalPort(state, input);
      if (same) {
        // The same port again (a re-run, e.g. after a crash): nothing to record; the host is
        // brought in line with it.
        const plans = await this.syncNetwork(state, net.name, opts.dryRun);
        const notes = [`port ${portId(same)} already exists as asked; its host objects were checked`];
        return { dryRun: opts.dryRun, definitions: [], plans, notes, port: portView(same) };
      }
      // On a running network, the port delta: the tap name is picked from the stored ports and
      // checked alone (planPortDelta gives up when a link of that name exists: the full path then
      // picks the next free one, as it would have).
      const quick = buildPort(input, { net, ports: Object.values(state.ports), links: new Set() });
      const quickNext: StateData = { ...state, ports: { ...state.ports, [portKey(quick)]: quick } };
      const delta = await this.planPortDelta(state, quickNext, quick, true);
      if (delta) {
        const plans = await this.withIntent(state, quickNext, opts.dryRun, () =>
          this.runPortDelta(delta, opts.dryRun, () => this.syncNetwork(quickNext, net.name, false)),
        );
        return { dryRun: opts.dryRun, definitions: [], plans, notes: [], port: portView(quick) };
      }
      // One observation serves the name check and the plan (nothing changes the host in between).
      const obs = await this.observeNetwork(net);
      const port = buildPort(input, {
        net,
        ports: Object.values(state.ports),
        links: new Set(obs.links.keys()),
      });
      const next: StateData = { ...state, ports: { ...state.ports, [portKey(port)]: port } };
      const plans = await this.withIntent(state, next, opts.dryRun, () =>
        this.syncNetwork(next, net.name, opts.dryRun, obs),
      );
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], port: portView(port) };
    });
  }

  /** One port with what its anti-spoofing lets through now. */
  async portInfo(ref: string, network: string | undefined): Promise<PortInfo> {
    const state = await this.store.load();
    const p = Engine.resolvePort(state, ref, network);
    const lease = (await readLeases(this.paths.leaseFile(p.network))).find((l) => l.mac === p.mac);
    const running = (await this.store.loadApplied(p.network)) !== undefined;
    return {
      ...portView(p),
      running,
      lease: lease?.ip ?? null,
      allowedSource: spoofCheckOf(p) ? { mac: p.mac, ip: p.ip ?? lease?.ip ?? null } : null,
    };
  }

  /**
   * Stores `next` before `apply` changes the host (intent first: after a crash, a re-run, `down` or
   * `port del` knows what may exist), and puts `state` back if the apply fails (it rolled back).
   */
  private async withIntent<T>(
    state: StateData,
    next: StateData,
    dryRun: boolean,
    apply: () => Promise<T>,
  ): Promise<T> {
    if (dryRun) return apply();
    await this.store.save(next);
    stepApplied();
    try {
      return await apply();
    } catch (e) {
      // As it was loaded (`next` may be `state` changed in place).
      await this.store.restore(state);
      throw e;
    }
  }

  /** A stored port that `input` describes exactly (same network, VM and --mac; same --ip, model and flags). */
  private static identicalPort(state: StateData, input: PortInput): PortDef | undefined {
    if (input.mac === undefined) return undefined;
    const mac = normalizeMac(input.mac);
    const ipN = input.ip === undefined ? undefined : parseIpv4(input.ip);
    const ip = ipN === undefined ? input.ip : formatIpv4(ipN);
    return Object.values(state.ports).find(
      (p) =>
        p.mac === mac &&
        p.network === input.network &&
        p.vm === input.vm &&
        p.ip === ip &&
        p.model === (input.model ?? DEFAULT_MODEL) &&
        spoofCheckOf(p) === (input.spoofCheck ?? true) &&
        (p.isolated ?? false) === (input.isolated ?? false) &&
        isLibvirtPort(p) === (input.tap === 'libvirt'),
    );
  }

  /** Removes a port and its tap (a guest still using it loses its cable). */
  async portDel(
    ref: string,
    network: string | undefined,
    opts: { dryRun: boolean },
  ): Promise<OpResult & { port: PortView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      const port = Engine.resolvePort(state, ref, network);
      const next: StateData = { ...state, ports: { ...state.ports } };
      delete next.ports[portKey(port)];
      Engine.checkForwardsResolve(next, port.network, `port ${portId(port)} is removed`, port.vm);
      const full = async (dryRun: boolean, pre?: Observed): Promise<NetworkPlan[]> => {
        const obs = pre ?? (await this.observeNetwork(Engine.getDef(state, port.network)));
        const plans = [await this.deleteTaps(port.network, [port], dryRun, obs)];
        // Deleting a tap changes the host: then the sync observes again.
        const fresh = plans[0]?.steps.length === 0 || dryRun ? obs : undefined;
        plans.push(...(await this.syncNetwork(next, port.network, dryRun, fresh)));
        return plans;
      };
      const delta = await this.planPortDelta(state, next, port, false);
      const plans = delta
        ? await this.runPortDelta(delta, opts.dryRun, () => full(false))
        : await full(opts.dryRun);
      if (!opts.dryRun) await this.store.save(next);
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], port: portView(port) };
    });
  }

  /** Pulls (down) or plugs (up) a port's cable. */
  async portLink(
    ref: string,
    network: string | undefined,
    link: LinkState,
    opts: { dryRun: boolean },
  ): Promise<OpResult & { port: PortView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      const port = { ...Engine.resolvePort(state, ref, network), link };
      if (isLibvirtPort(port)) {
        throw inputError(
          'libvirt-port',
          `port ${portId(port)} is a libvirt port: libvirt owns its tap`,
          `pull its cable with \`virsh domif-setlink ${port.vm} ${port.mac} ${link}\``,
        );
      }
      const next: StateData = { ...state, ports: { ...state.ports, [portKey(port)]: port } };
      const plans = await this.syncNetwork(next, port.network, opts.dryRun);
      if (!opts.dryRun) await this.store.save(next);
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], port: portView(port) };
    });
  }

  /**
   * Changes a port's reservation (undefined: keeps it; null: drops it; forwards to its VM follow the
   * new address), its anti-spoofing and its isolation.
   */
  async portSet(
    ref: string,
    network: string | undefined,
    ip: string | null | undefined,
    opts: { dryRun: boolean; spoofCheck?: boolean; isolated?: boolean },
  ): Promise<OpResult & { port: PortView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      const old = Engine.resolvePort(state, ref, network);
      const net = Engine.getDef(state, old.network);
      const others = Object.values(state.ports).filter((p) => portKey(p) !== portKey(old));
      const port: PortDef = { ...old };
      if (ip !== undefined) {
        delete port.ip;
        if (ip !== null) port.ip = checkReservation(ip, { net, ports: others, links: new Set() });
      }
      // Only the non-defaults are stored (spoof-check off, isolation on).
      if (opts.spoofCheck !== undefined) {
        delete port.spoofCheck;
        if (!opts.spoofCheck) port.spoofCheck = false;
      }
      if (opts.isolated !== undefined) {
        delete port.isolated;
        if (opts.isolated) port.isolated = true;
      }
      const next: StateData = { ...state, ports: { ...state.ports, [portKey(port)]: port } };
      if (ip !== undefined)
        Engine.checkForwardsResolve(next, net.name, `port ${portId(old)} loses its reservation`);
      const plans = await this.syncNetwork(next, net.name, opts.dryRun);
      if (!opts.dryRun) await this.store.save(next);
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], port: portView(port) };
    });
  }

  // ---- libvirt domains ----------------------------------------------------------------------

  /**
   * Records a libvirt port: a port whose tap libvirt makes when the domain starts (the hook tells
   * kvmnet its name). Its MAC and reservation are kvmnet's, as `portAdd` makes them; no tap is made.
   */
  async libvirtInterface(
    input: PortInput,
    opts: { dryRun: boolean },
  ): Promise<OpResult & { port: PortView; bridge: string }> {
    const r = await this.portAdd({ ...input, tap: 'libvirt' }, opts);
    const state = await this.store.load();
    return { ...r, bridge: Engine.getDef(state, input.network).bridge };
  }

  /**
   * The libvirt qemu hook: on started/reconnect/attach, records which tap (target dev) of which
   * domain and MAC is on a kvmnet network's bridge; on stopped/release, forgets the taps. Only
   * stored state changes (reservations go by MAC, so dnsmasq is unaffected). Takes the lock for
   * at most `lockTimeoutMs`: libvirt waits for the hook. Returns what it did, for the hook's log.
   */
  async libvirtHookEvent(
    domain: string,
    operation: string,
    xml: string,
    lockTimeoutMs = 5000,
  ): Promise<string[]> {
    const starting = ['started', 'reconnect', 'attach'].includes(operation);
    const stopping = ['stopped', 'release'].includes(operation);
    if (!starting && !stopping) return [];
    const notes: string[] = [];
    let interfaces: DomainInterface[];
    try {
      interfaces = (await import('../model/domain.js')).parseDomainXml(xml).interfaces;
    } catch (e) {
      if (starting) throw e;
      // Stopping: forget the domain's taps by its name even without the XML.
      notes.push(`${e instanceof Error ? e.message : String(e)}; forgetting the taps of VM "${domain}"`);
      interfaces = [];
    }
    return this.locked(async () => {
      const state = await this.store.load();
      const byBridge = new Map(Object.values(state.networks).map((n) => [n.bridge, n]));
      const all = (): PortDef[] => Object.values(state.ports);
      let changed = false;
      const forget = (p: PortDef): void => {
        if (!isLibvirtPort(p) || p.name === '') return;
        notes.push(`${portId(p)} on ${p.network}: tap ${p.name} gone`);
        p.name = '';
        changed = true;
      };
      for (const i of interfaces) {
        const net = byBridge.get(i.bridge);
        if (!net) continue; // not a kvmnet network
        const port = all().find((p) => p.network === net.name && p.mac === i.mac);
        if (stopping) {
          if (port) forget(port);
          continue;
        }
        if (i.dev === undefined) {
          notes.push(`interface ${i.mac} on ${i.bridge} has no <target dev>: not recorded`);
          continue;
        }
        if (port && !isLibvirtPort(port)) {
          notes.push(
            `interface ${i.mac} (${i.dev}) has the MAC of kvmnet port ${portId(port)} (${port.name}): not recorded`,
          );
          continue;
        }
        // A tap name belongs to one interface: an older record of it is stale.
        for (const o of all()) if (o !== port && isLibvirtPort(o) && o.name === i.dev) forget(o);
        if (port) {
          if (port.name !== i.dev) {
            port.name = i.dev;
            changed = true;
            notes.push(`${portId(port)} on ${net.name}: tap ${i.dev} (${i.mac})`);
          }
          continue;
        }
        try {
          validateVmName(domain);
        } catch {
          notes.push(
            `domain name "${domain}" is not a DNS label: interface ${i.mac} (${i.dev}) not recorded`,
          );
          continue;
        }
        const p: PortDef = {
          name: i.dev,
          tap: 'libvirt',
          network: net.name,
          vm: domain,
          index: nextIndex(domain, all()),
          mac: i.mac,
          model: i.model ?? 'virtio',
          link: 'up',
        };
        state.ports[portKey(p)] = p;
        changed = true;
        notes.push(`${portId(p)} on ${net.name}: new libvirt port, tap ${i.dev} (${i.mac})`);
      }
      if (stopping) for (const p of all()) if (p.vm === domain) forget(p);
      if (changed) {
        await this.store.save(state);
        // The domain's taps get (or lose) their anti-spoofing chains now; a failure must not fail libvirt.
        try {
          const step = await this.bridgeTableStep(state);
          if (step) await this.firewall.apply(step.script);
        } catch (e) {
          notes.push(`table bridge kvmnet not updated: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      return notes;
    }, lockTimeoutMs);
  }

  // ---- forwards ------------------------------------------------------------------------------

  async forwardList(network?: string): Promise<ForwardView[]> {
    const state = await this.store.load();
    if (network !== undefined) Engine.getDef(state, network);
    return Object.values(state.forwards)
      .filter((f) => network === undefined || f.network === network)
      .sort(compareForwards)
      .map((f) => forwardView(state, f));
  }

  /** Adds a port forward: one nft transaction adding its map elements if the network runs. */
  async forwardAdd(
    input: ForwardInput,
    opts: { dryRun: boolean },
  ): Promise<OpResult & { forward: ForwardView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      const net = Engine.getDef(state, input.network);
      const ctx = {
        net,
        allowed: driverFor(net.mode).capabilities.forwards,
        ports: Object.values(state.ports),
        forwards: Object.values(state.forwards),
      };
      // The same forward again (a re-run, e.g. after a crash): nothing to record; the network's
      // firewall is reconciled with the stored forwards.
      const asked = buildForward(input, { ...ctx, forwards: [] });
      const stored = state.forwards[forwardId(asked)];
      if (stored && JSON.stringify(stored) === JSON.stringify(asked)) {
        const plans = await this.syncForwards(state, net.name, opts.dryRun);
        const notes = [`forward ${forwardId(stored)} already exists as asked; the firewall was checked`];
        return { dryRun: opts.dryRun, definitions: [], plans, notes, forward: forwardView(state, stored) };
      }
      const f = buildForward(input, ctx);
      if (f.hostIp !== undefined) await this.checkHostIp(state, f.hostIp);
      // In place: a copy of a map of 1,000 forwards costs about 0.7 ms; withIntent restores the
      // file as loaded should the apply fail.
      state.forwards[forwardId(f)] = f;
      const next = state;
      const added = dnatElements(
        expandForward(f, targetAddress(f, { net, ports: Object.values(state.ports) })),
      );
      const plans = await this.withIntent(state, next, opts.dryRun, () =>
        this.forwardDelta(next, net.name, added, [], opts.dryRun),
      );
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], forward: forwardView(next, f) };
    });
  }

  /** Removes a port forward, named by protocol and host port(s) (and --host-ip) or by its id. */
  async forwardDel(
    network: string,
    ref: { id: string } | { proto: string; ports: string; hostIp?: string },
    opts: { dryRun: boolean },
  ): Promise<OpResult & { forward: ForwardView }> {
    return this.locked(async () => {
      const state = await this.store.load();
      Engine.getDef(state, network);
      let id: string;
      if ('id' in ref) id = ref.id;
      else {
        const [port, portEnd] = parsePortRange(ref.ports, 'host port');
        const hostIp =
          ref.hostIp === undefined
            ? undefined
            : parseIpv4(ref.hostIp) === undefined
              ? ref.hostIp
              : formatIpv4(parseIpv4(ref.hostIp) ?? 0);
        id = forwardId({
          proto: ref.proto as ForwardDef['proto'],
          port,
          portEnd,
          ...(hostIp === undefined ? {} : { hostIp }),
        });
      }
      const f = own(state.forwards, id);
      if (!f || f.network !== network) {
        const known = forwardsOf(state, network).map(forwardId);
        throw inputError(
          'unknown-forward',
          `network "${network}" has no forward ${id}`,
          known.length ? `its forwards: ${known.join(', ')}` : 'see `kvmnet forward list`',
        );
      }
      // In place (see forwardAdd): nothing reads the forward from `state` after this.
      const next = state;
      delete next.forwards[id];
      const net = Engine.getDef(state, network);
      const removed = dnatElements(
        expandForward(f, targetAddress(f, { net, ports: Object.values(state.ports) })),
      );
      const plans = await this.forwardDelta(next, network, [], removed, opts.dryRun);
      if (!opts.dryRun) await this.store.save(next);
      return { dryRun: opts.dryRun, definitions: [], plans, notes: [], forward: forwardView(state, f) };
    });
  }

  /** A forward bound to a host address needs that address on the host (not a kvmnet gateway). */
  private async checkHostIp(state: StateData, ip: string): Promise<void> {
    const gw = Object.values(state.networks).find((n) => n.gateway === ip);
    if (gw) {
      throw inputError(
        'invalid-host-ip',
        `host ip ${ip} is the gateway of network "${gw.name}"`,
        "forwards listen on the host's own addresses, e.g. its LAN address",
      );
    }
    const addrs = await this.host.addrs();
    if (!addrs.some((a) => a.cidr.split('/')[0] === ip)) {
      const own = addrs.map((a) => a.cidr.replace(/\/.*/, '')).filter((a) => !a.startsWith('127.'));
      throw inputError(
        'invalid-host-ip',
        `host ip ${ip} is not an address of this host`,
        `the host has: ${own.join(', ') || 'no address'}`,
      );
    }
  }

  /**
   * One forward added or removed on a running network: a delta transaction on its map elements,
   * so its cost does not grow with the number of forwards. The kernel checks the result itself: it
   * refuses `add element` of a key that maps to another target and `delete element` of a missing
   * key, and the transaction is all or nothing, so a committed delta means the map holds exactly
   * the new elements and none of the removed ones (no read-back: nft 1.0.6's `get element` fetches
   * every element of the table first, which made one forward cost more with 1,000 present). If the
   * table drifted (an element missing or holding another target, the table gone), the firewall is
   * reconciled in full instead. A stopped network gets its forwards with `net start`.
   */
  private async forwardDelta(
    state: StateData,
    name: string,
    add: ElementSpec[],
    remove: ElementSpec[],
    dryRun: boolean,
  ): Promise<NetworkPlan[]> {
    if (!(await this.store.loadApplied(name))) return [];
    const script = this.firewall.renderForwardDelta(add, remove);
    const plan: NetworkPlan = {
      network: name,
      action: 'update',
      steps: [
        {
          kind: 'nft',
          why: 'port forward change',
          script,
          undo: this.firewall.renderForwardDelta(remove, add),
        },
      ],
    };
    if (dryRun) return [plan];
    try {
      await this.firewall.applyForwardDelta(add, remove);
      stepApplied();
    } catch {
      this.note(`kvmnet's nft table differs from what was applied; reconciling network "${name}" in full`);
      return this.syncForwards(state, name, false);
    }
    return [plan];
  }

  /**
   * Forwards change only the running network's firewall (nothing while it is stopped): observe,
   * plan and verify the nft table alone, so one forward costs the same with 10 or 1,000 present
   * but for reading the table.
   */
  private async syncForwards(state: StateData, name: string, dryRun: boolean): Promise<NetworkPlan[]> {
    const applied = await this.store.loadApplied(name);
    if (!applied) return [];
    const def = Engine.getDef(state, name);
    const intent = driverFor(def.mode).firewall(def, dnatOf(state, def), peersOf(state, def));
    const change = this.firewall.planNetwork(intent, applied.firewall, await this.firewall.observe());
    const steps: Step[] = change.script
      ? [{ kind: 'nft', why: change.reasons.join('; '), script: change.script, undo: change.undo }]
      : [];
    const plan: NetworkPlan = { network: name, action: 'update', steps };
    if (dryRun || steps.length === 0) return [plan];
    await this.runAtomically(plan);
    const after = this.firewall.planNetwork(intent, change.applied, await this.firewall.observe());
    if (after.script) {
      throw failure(
        'verify-failed',
        `network "${name}" does not match after apply: ${after.reasons.join('; ')}`,
        {
          hint: 'something else changed the nft table at the same time; run the command again',
        },
      );
    }
    const rec = { ...applied, firewall: change.applied };
    if (!sameRecord(applied, rec)) await this.store.saveApplied(rec);
    return [plan];
  }

  /**
   * Refuses a change after which a forward to a VM on `network` would have no address to reach.
   * With `vm`, only the forwards to that VM are checked (removing one of its ports changes no
   * other forward's target): a pass over the forwards, not a sort and a check of each.
   */
  private static checkForwardsResolve(state: StateData, network: string, what: string, vm?: string): void {
    const net = own(state.networks, network);
    if (!net) return;
    const ports = Object.values(state.ports);
    const forwards =
      vm === undefined
        ? forwardsOf(state, network)
        : Object.values(state.forwards)
            .filter((f) => f.network === network && f.target === vm)
            .sort(compareForwards);
    for (const f of forwards) {
      try {
        targetAddress(f, { net, ports });
      } catch {
        throw inputError(
          'forward-depends',
          `forward ${forwardId(f)} reaches ${f.target}, which would have no address once ${what}`,
          `remove it first with \`kvmnet forward del ${network} ${forwardId(f)}\``,
        );
      }
    }
  }

  /** Leases from dnsmasq's lease files, with the VM and port that own each MAC. */
  async leases(
    network?: string,
  ): Promise<Array<Lease & { network: string; vm: string | null; port: string | null }>> {
    const state = await this.store.load();
    const nets = network === undefined ? Object.values(state.networks) : [Engine.getDef(state, network)];
    const byMac = new Map(Object.values(state.ports).map((p) => [`${p.network}|${p.mac}`, p]));
    const out: Array<Lease & { network: string; vm: string | null; port: string | null }> = [];
    // Bridged networks hold no leases: the LAN's DHCP server does.
    for (const n of nets.filter(isL3).sort((a, b) => compareNames(a.name, b.name))) {
      for (const l of await readLeases(this.paths.leaseFile(n.name))) {
        const p = byMac.get(`${n.name}|${l.mac}`);
        out.push({ network: n.name, ...l, vm: p?.vm ?? null, port: p ? p.name || portId(p) : null });
      }
    }
    return out;
  }

  /** Every network with its bridge and ports (like `brctl show`, with VM names, addresses and link state). */
  async show(): Promise<ShowNetwork[]> {
    const state = await this.store.load();
    const applied = new Map((await this.store.listApplied()).map((a) => [a.network, a]));
    const links = new Map((await this.host.links()).map((l) => [l.ifname, l]));
    const out: ShowNetwork[] = [];
    for (const n of Object.values(state.networks).sort((a, b) => compareNames(a.name, b.name))) {
      // A bridged network holds no leases: the bridge's neighbour table tells the guests' addresses.
      const leases = isL3(n)
        ? new Map((await readLeases(this.paths.leaseFile(n.name))).map((l) => [l.mac, l.ip]))
        : new Map(
            (await this.host.neighbors(n.bridge)).flatMap((x) =>
              x.lladdr ? [[x.lladdr.toLowerCase(), x.dst] as const] : [],
            ),
          );
      out.push({
        network: n.name,
        mode: n.mode,
        bridge: n.bridge,
        subnet: n.subnet ?? null,
        gateway: n.gateway ?? null,
        uplink: n.uplink ?? null,
        state: stateOf(applied.get(n.name)),
        ports: portsOf(state, n.name).map((p) => {
          const link = p.name === '' ? undefined : links.get(p.name);
          const lease = leases.get(p.mac);
          return {
            port: p.name,
            tap: p.tap ?? 'kvmnet',
            id: portId(p),
            vm: p.vm,
            mac: p.mac,
            tapMac: tapMac(p.mac),
            ip: p.ip ?? lease ?? null,
            ipSource: p.ip !== undefined ? 'reservation' : lease ? (isL3(n) ? 'lease' : 'neighbour') : null,
            link: p.link,
            plugged: link?.master === n.bridge,
            carrier:
              link !== undefined && !link.flags.includes('NO-CARRIER') && link.flags.includes('LOWER_UP'),
          };
        }),
        forwards: forwardsOf(state, n.name).map((f) => forwardView(state, f)),
      });
    }
    return out;
  }

  private static resolvePort(state: StateData, ref: string, network: string | undefined): PortDef {
    if (network !== undefined) Engine.getDef(state, network);
    const all = Object.values(state.ports).filter((p) => network === undefined || p.network === network);
    const exact = all.find((p) => (p.name !== '' && p.name === ref) || portId(p) === ref);
    if (exact) return exact;
    const ofVm = all.filter((p) => p.vm === ref);
    if (ofVm.length === 1 && ofVm[0]) return ofVm[0];
    if (ofVm.length > 1) {
      throw inputError(
        'ambiguous-port',
        `VM "${ref}" has ${ofVm.length} ports${network ? ` on "${network}"` : ''}: ${ofVm.map((p) => `${portId(p)} (${tapText(p)} on ${p.network})`).join(', ')}`,
        network === undefined
          ? 'name one: its tap (vnetN), VM/netN, or add --network'
          : 'name one: its tap (vnetN) or VM/netN',
      );
    }
    throw inputError(
      'unknown-port',
      `no port or VM named "${ref}"${network ? ` on network "${network}"` : ''}`,
      'see `kvmnet port list`',
    );
  }

  /**
   * The port delta (issue 9, part 2): one port added to or removed from a running network, with
   * only the port's own objects observed, planned, applied and verified: its tap (`ip link show dev`,
   * not every link), its anti-spoofing elements in table bridge kvmnet (planBridgePortDelta, from
   * the stored state: the table is not listed), the network's two reservation files and dnsmasq's
   * SIGHUP. Table inet kvmnet (the forwards) does not depend on ports and is not read. So the cost
   * does not grow with the ports and forwards present, but for the state file (load, save) and
   * the reservation files (rewritten whole), both plain file I/O. `before` and `after` differ in
   * `port` alone.
   *
   * Null when the full reconcile (startLocked) must do it, before anything changes: the network is
   * not simply running as defined (stopped, half-started, redefined since its start, bridged or
   * on a host bridge); a forward reaches the port's VM by name (its target may move); the port is
   * the network's first or last checked one (a chain or set of table bridge kvmnet comes or goes;
   * an unchecked port, e.g. a libvirt port before its tap is known, beside no checked port at all
   * changes nothing there and is a delta);
   * the new tap's name is taken by a link (the full path picks the next free one); or what the
   * change touches looks drifted (dnsmasq not running or its configuration not as rendered),
   * which is noted. Drift of the port's elements
   * shows when the transaction runs (runPortDelta). Drift elsewhere in the network (its bridge,
   * table inet kvmnet, other ports) is not looked at: `check` and `net start` find and repair it,
   * as they do after a forward delta.
   */
  private async planPortDelta(
    before: StateData,
    after: StateData,
    port: PortDef,
    adding: boolean,
  ): Promise<PortDelta | null> {
    const name = port.network;
    const def = Engine.getDef(after, name);
    const applied = await this.store.loadApplied(name);
    if (!applied || !Engine.simplyRunning(applied, def)) return null;
    if (Object.values(before.forwards).some((f) => f.network === name && f.target === port.vm)) return null;
    const drifted = (why: string): null => {
      this.note(`${why}; reconciling network "${name}" in full`);
      return null;
    };
    const tapName = ownTap(port);
    const [tap, local, running] = await Promise.all([
      tapName === null ? null : this.host.link(tapName),
      observeLocal(this.host, this.paths, { defs: [def], applied: [applied] }),
      this.store.listApplied(),
    ]);
    // A link of that name (a libvirt guest's vnetN, say) is no drift: the full path picks the next
    // free name, as it always would have.
    if (adding && tap) return null;
    const want = dnsmasqFiles(def, this.paths, portsOf(after, name));
    const confFile = this.paths.dnsmasqConf(name);
    for (const path of [confFile, this.paths.leaseHook(name)]) {
      if (want.has(path) && local.files.get(path) !== want.get(path))
        return drifted(`${path} is not as rendered`);
    }
    const pid = runningDnsmasq(applied, local, confFile);
    if (pid === undefined) return drifted(`dnsmasq of network "${name}" is not running`);
    const bridge = await planBridgePortDelta(
      this.paths,
      before,
      after,
      new Set(running.map((a) => a.network)),
      `anti-spoofing elements of port ${portId(port)}`,
    );
    if (!bridge) return null;

    const links = new Map<string, LinkInfo>(tap ? [[tap.ifname, tap]] : []);
    const steps: Step[] = adding
      ? planPorts([port], def.bridge, { links }, def.mtu)
      : tap
        ? [deleteTapStep(port)]
        : [];
    if (bridge.step) steps.push(bridge.step);
    const files = [this.paths.dhcpHostsFile(name), this.paths.hostsFile(name)];
    let reload = false;
    for (const path of files) {
      const content = want.get(path) ?? '';
      if (local.files.get(path) === content) continue;
      const why = local.files.get(path) == null ? 'missing' : 'content differs';
      steps.push({ kind: 'write', why, path, content });
      reload = true;
    }
    if (reload) steps.push({ kind: 'dnsmasq-reload', why: 'host reservations changed', pid });
    return {
      plan: { network: name, action: 'update', steps },
      port,
      adding,
      def,
      files: files.map((f) => [f, want.get(f) ?? '']),
    };
  }

  /**
   * Whether a network runs as `def` defines it, on a bridge of its own: started to the end, not
   * redefined since, not bridged to an uplink or on a host bridge. Only then can a change be
   * planned from its record (a port delta, a stop) rather than from an observation.
   */
  private static simplyRunning(applied: AppliedNetwork, def: NetworkDef): boolean {
    return (
      applied.state === 'active' &&
      !applied.uplink &&
      !applied.hostBridge &&
      !driverFor(def.mode).capabilities.uplink &&
      JSON.stringify(applied.def) === JSON.stringify(def)
    );
  }

  /**
   * Applies a port delta (unless dryRun) as one unit: on failure what ran is undone (Reverter) and,
   * when that succeeded, `full` (the full reconcile) does the change instead, noted: a failing
   * step is what drift of the port's objects looks like (an element to delete already gone, one
   * to add held with another value). Then only what the delta changed is read back.
   */
  private async runPortDelta(
    d: PortDelta,
    dryRun: boolean,
    full: () => Promise<NetworkPlan[]>,
  ): Promise<NetworkPlan[]> {
    if (dryRun) return [d.plan];
    const name = d.plan.network;
    const reverter = new Reverter();
    try {
      await removeStaleTemps(this.paths.netRunDir(name));
      await this.execute(d.plan.steps, reverter, () => {});
    } catch (e) {
      const undoFailures = await reverter.revert();
      const msg = e instanceof Error ? e.message : String(e);
      if (undoFailures.length)
        throw failure('apply-failed', `${msg}; rollback incomplete: ${undoFailures.join('; ')}`, {
          cause: e,
        });
      this.note(`port ${portId(d.port)}: ${msg}; reconciling network "${name}" in full`);
      return full();
    }
    reverter.success();
    await this.verifyPortDelta(d);
    return [d.plan];
  }

  /**
   * The port's tap and the reservation files as a port delta left them (else verify-failed). Its
   * elements in table bridge kvmnet are not read back: `nft -f` commits them as one transaction or
   * fails, and `nft get element` would first cache every element of kvmnet's tables (its cost
   * grows with the ports and forwards); `check` compares the whole table.
   */
  private async verifyPortDelta(d: PortDelta): Promise<void> {
    const { port } = d;
    const tapName = ownTap(port);
    const [tap, files] = await Promise.all([
      tapName === null ? null : this.host.link(tapName),
      Promise.all(d.files.map(([path]) => readOrNull(path))),
    ]);
    const problems: string[] = [];
    if (d.adding) {
      const links = new Map<string, LinkInfo>(tap ? [[tap.ifname, tap]] : []);
      for (const s of planPorts([port], d.def.bridge, { links }, d.def.mtu)) problems.push(s.why);
    } else if (tap) problems.push(`tap ${tap.ifname} still exists`);
    d.files.forEach(([path, content], i) => {
      if (files[i] !== content) problems.push(`${path} is not as written`);
    });
    if (problems.length) {
      throw failure(
        'verify-failed',
        `network "${d.plan.network}" does not match after apply: ${problems.join('; ')}`,
        { hint: 'something else changed the host at the same time; run `kvmnet net start` to reconcile' },
      );
    }
  }

  /** Brings a network's host objects in line with `state`: a full reconcile if it runs, its taps if not. */
  private async syncNetwork(
    state: StateData,
    name: string,
    dryRun: boolean,
    pre?: Observed,
  ): Promise<NetworkPlan[]> {
    if (await this.store.loadApplied(name))
      return this.startLocked(state, name, dryRun, pre === undefined ? {} : { pre });
    const obs = pre ?? (await this.observeFor([], []));
    const plan: NetworkPlan = {
      network: name,
      action: 'update',
      steps: planPorts(portsOf(state, name), null, obs),
    };
    if (!dryRun) await this.runAtomically(plan);
    return [plan];
  }

  private async deleteTaps(
    network: string,
    ports: PortDef[],
    dryRun: boolean,
    pre?: Observed,
  ): Promise<NetworkPlan> {
    const obs = pre ?? (await this.observeFor([], []));
    // A libvirt port's tap is libvirt's: it goes when the domain stops or drops the interface.
    const present = ports.filter((p) => !isLibvirtPort(p) && obs.links.has(p.name));
    const steps: Step[] = present.map(deleteTapStep);
    const plan: NetworkPlan = { network, action: 'update', steps };
    if (!dryRun) await this.runAtomically(plan);
    return plan;
  }

  /** Runs a plan's steps; on failure undoes what ran and reports it. */
  private async runAtomically(plan: NetworkPlan): Promise<void> {
    const reverter = new Reverter();
    try {
      await this.execute(plan.steps, reverter, () => {});
    } catch (e) {
      const undoFailures = await reverter.revert();
      throw failure(
        'apply-failed',
        `${e instanceof Error ? e.message : String(e)}; ${undoFailures.length ? `rollback incomplete: ${undoFailures.join('; ')}` : 'everything it did was rolled back'}`,
        { cause: e },
      );
    }
    reverter.success();
  }

  /** Drift check and repair (src/engine/drift.ts): `fn` runs under the state lock with these verbs. */
  async driftSession<T>(fn: (s: DriftSession) => Promise<T>, lockTimeoutMs?: number): Promise<T> {
    return this.locked(
      () =>
        fn({
          observe: (defs, applied) => this.observeFor(defs, applied),
          start: (state, name, dryRun, restartDnsmasq) =>
            this.startLocked(state, name, dryRun, { restartDnsmasq }),
          run: (plan) => this.runAtomically(plan),
        }),
      lockTimeoutMs,
    );
  }

  // ---- internals -----------------------------------------------------------------------------

  private async stockDefault(state: StateData, notes: string[]): Promise<NetworkDef> {
    const applied = await this.store.listApplied();
    const obs = await this.observeHostNet();
    const usage = hostUsage(obs, Engine.ownBridges(applied));
    const others = Object.values(state.networks);
    const taken = (cidr: string): string | undefined => {
      const c = parseCidr(cidr);
      if (!c) return 'invalid';
      for (const o of others) {
        const oc = o.subnet === undefined ? undefined : parseCidr(o.subnet);
        if (oc && overlaps(c, oc)) return `network "${o.name}"`;
      }
      for (const p of usage.prefixes) {
        const pc = parseCidr(p.cidr);
        if (pc && pc.prefix > 0 && overlaps(c, pc)) return p.where;
      }
      return undefined;
    };
    const stock = DEFAULT_CANDIDATES[0] ?? '192.168.122.0/24';
    const why = taken(stock);
    const subnet = DEFAULT_CANDIDATES.find((c) => taken(c) === undefined);
    if (!subnet)
      throw failure('no-free-subnet', 'no free 192.168.N.0/24 subnet for the default network', {
        hint: 'define one with `kvmnet net define`',
      });
    if (why)
      notes.push(
        `${stock} is already in use on this host (${why}); the default network uses ${subnet} instead`,
      );
    const used = new Set([...others.map((o) => o.bridge), ...usage.links]);
    const bridge = used.has('virbr0') ? pickBridgeName(used) : 'virbr0';
    return buildNetwork(
      { name: 'default', mode: 'nat', subnet, bridge, autostart: true },
      { others, host: usage },
    );
  }

  /** Plans (and unless dryRun applies) one network into the running state. */
  private async startLocked(
    state: StateData,
    name: string,
    dryRun: boolean,
    opts: StartOpts = {},
  ): Promise<NetworkPlan[]> {
    const { confirmTimeout = 20, chain } = opts;
    const def = Engine.getDef(state, name);
    const driver = driverFor(def.mode);
    if (driver.capabilities.uplink) {
      if (chain) delete chain.after;
      return this.startBridged(state, def, dryRun, confirmTimeout);
    }
    let applied = await this.store.loadApplied(name);
    const plans: NetworkPlan[] = [];
    if (applied && applied.bridge !== def.bridge) {
      // The bridge is renamed: take the old one down first.
      plans.push(await this.stopLocked(name, dryRun));
      applied = dryRun ? applied : undefined;
    }
    // A stop above changed the host: then `pre` and the chain's observation are stale.
    const scope = { defs: [def], applied: applied ? [applied] : [] };
    const fresh = plans.length === 0;
    // Neither an observation handed in nor the chain's: this start observes the host, and lists its
    // links while the applied records are read (every observation below needs them).
    const observes = fresh && !opts.pre && !chain?.after;
    const net = observes ? this.host.netState() : undefined;
    net?.catch(() => {}); // awaited by the observation that takes it
    const allApplied = await this.store.listApplied();
    if (observes && !dryRun && !opts.observed) {
      const recorded = await this.observeFromRecord(state, def, applied, allApplied, net);
      if (recorded) {
        try {
          return await this.startObserved(state, def, applied, allApplied, recorded, plans, dryRun, opts);
        } catch (e) {
          // What the host's state decides (the transaction refused, the check after it) is done
          // again from an observation; anything else (bad input, a closed run dir) would fail the
          // same way there.
          if (!(e instanceof KvmnetError) || !['start-failed', 'verify-failed'].includes(e.code)) throw e;
          this.note(`start of network "${name}" from the records: ${e.message}; observing the host to do it`);
          return this.startLocked(await this.store.load(), name, dryRun, { ...opts, observed: true });
        }
      }
    }
    const obs =
      fresh && opts.pre
        ? opts.pre
        : fresh && chain?.after
          ? await rescope(this.host, this.firewall, this.paths, chain.after, scope)
          : await this.observeFor(scope.defs, scope.applied, net);
    if (chain) delete chain.after;
    return this.startObserved(state, def, applied, allApplied, obs, plans, dryRun, opts);
  }

  /**
   * net start's fast path: the observation of a network that has never been applied (no record)
   * while every running network is as its record says, with kvmnet's nft tables taken from the
   * records instead of listed (observeFromRecords): one ip process and the files, whatever the
   * number of running networks. Its nft transaction adds the network's chains (added and flushed
   * first, so leftovers go) and elements (refused by the kernel, all or nothing, when a key holds
   * another value). That transaction is a delta whose commit is its verification, as for a port or
   * forward delta: the verifying observation lists the links again, not the tables. When any of it
   * fails, what ran is undone and startLocked observes the host and plans again. Null where the
   * full observation is needed: a network that was applied before, peered, bridged or on a host
   * bridge; a running network not as recorded; none with rules (the first network's table is cheap
   * to list); `nft` or `ip` missing (the observed start names it).
   */
  private async observeFromRecord(
    state: StateData,
    def: NetworkDef,
    applied: AppliedNetwork | undefined,
    allApplied: AppliedNetwork[],
    net?: Promise<NetState>,
  ): Promise<Observed | null> {
    if (applied || !['nat', 'routed', 'isolated'].includes(def.mode)) return null;
    if (peersOf(state, def).length > 0) return null;
    const others = allApplied.filter((a) => a.network !== def.name);
    if (!others.some((a) => a.firewall.chains.length > 0)) return null;
    for (const a of others) {
      const d = own(state.networks, a.network);
      if (!d || !Engine.simplyRunning(a, d)) return null;
    }
    if (!(await onPath('nft')) || !(await onPath('ip'))) return null;
    return observeFromRecords(
      this.host,
      this.firewall,
      this.paths,
      { defs: [def], applied: [] },
      others,
      net,
    );
  }

  /** startLocked from `obs` on: plan, apply with rollback, verify. */
  private async startObserved(
    state: StateData,
    def: NetworkDef,
    applied: AppliedNetwork | undefined,
    allApplied: AppliedNetwork[],
    obs: Observed,
    before: NetworkPlan[],
    dryRun: boolean,
    opts: StartOpts,
  ): Promise<NetworkPlan[]> {
    const { restartDnsmasq = false, chain } = opts;
    const name = def.name;
    const driver = driverFor(def.mode);
    const scope = { defs: [def], applied: applied ? [applied] : [] };
    const plans = [...before];
    const fromRecords = obs.bridgeTable === NOT_LISTED;
    this.checkStartable(def, obs, applied, allApplied);
    const closed = await firstUntraversable(this.paths.netRunDir(name));
    if (closed !== null) {
      throw failure(
        'run-dir-closed',
        `dnsmasq could not read its files: directory ${closed} is not searchable by other users`,
        {
          hint: `dnsmasq drops root after start-up; run \`chmod o+x ${closed}\` or use another --run-dir`,
        },
      );
    }
    const ports = portsOf(state, name);
    const dnat = dnatOf(state, def);
    const peers = peersOf(state, def);
    const { plan, firewall } = planStart(
      def,
      driver,
      obs,
      applied,
      { paths: this.paths, firewall: this.firewall },
      ports,
      dnat,
      peers,
      { restartDnsmasq },
    );
    const running = allApplied.map((a) => a.network);
    joinBridgeStep(
      plan.steps,
      fromRecords
        ? await planBridgeFromRecord(this.paths, state, new Set(running), new Set([...running, name]))
        : await this.bridgeTableStep(state, name, undefined, obs),
    );
    plans.push(plan);
    // Nothing applied (a dry run, or nothing to do): the host is as observed for the next start.
    if (chain && plans.length === 1) chain.after = obs;
    if (dryRun) return plans;
    const unchanged = applied?.state === 'active' && JSON.stringify(applied.def) === JSON.stringify(def);
    if (plan.steps.length === 0 && unchanged) return plans;
    if (chain) delete chain.after;
    // The recorded pid, or (after a crash that left it unrecorded) the one in dnsmasq's pid file.
    const dnsmasqPid = runningDnsmasq(applied, obs, this.paths.dnsmasqConf(name));

    // Until this apply finishes, the record covers both the old and the new rules.
    const rec = this.startRecord(def, applied, mergeFirewall(applied?.firewall, firewall), dnsmasqPid);
    const reverter = new Reverter();
    const previous = applied;
    reverter.add('restore the applied record', async () => {
      if (previous) await this.store.saveApplied(previous);
      else {
        await this.store.removeApplied(name);
        await removeIfEmpty(this.paths.appliedDir);
      }
    });
    // A crash half-way through the last start may have left temporary files (writeAtomic).
    await removeStaleTemps(this.paths.netRunDir(name));
    // Write-ahead: the record names everything this apply may create before it creates it (skipped
    // when it already does, e.g. for a port forward, whose elements the record does not list).
    if (!sameRecord(previous, rec)) {
      await this.store.saveApplied(rec);
      stepApplied();
    }
    let kernel: KernelView;
    try {
      kernel = await this.executeStart(
        plan.steps,
        reverter,
        (pid) => {
          if (rec.dnsmasq) rec.dnsmasq.pid = pid;
        },
        // From the records, the nft transaction is a delta whose commit is its verification (as
        // for a port or forward delta): the kernel took all of it or nothing. Not listed again.
        { scope, base: obs, trustRecorded: fromRecords },
      );
      rec.state = 'active';
      rec.firewall = firewall;
      if (!sameRecord(previous, rec)) await this.store.saveApplied(rec);
    } catch (e) {
      const undoFailures = await reverter.revert();
      if (!previous) {
        await removeIfEmpty(this.paths.netRunDir(name));
        await removeIfEmpty(this.paths.netRunRoot);
      }
      const msg = e instanceof Error ? e.message : String(e);
      const hint = e instanceof KvmnetError ? e.hint : undefined;
      throw failure(
        'start-failed',
        `start of network "${name}" failed: ${msg}; ${undoFailures.length ? `rollback incomplete: ${undoFailures.join('; ')}` : 'everything it did was rolled back'}`,
        { ...(hint === undefined ? {} : { hint }), cause: e },
      );
    }
    reverter.success();
    const after = await this.verify(def, rec, ports, dnat, peers, kernel);
    // From the records, the tables were not listed again: nothing to compare the bridge table
    // with, and a view that is not the host's, so the next start of a chain observes.
    if (!fromRecords) {
      await this.verifyBridgeTable(state, name, after);
      if (chain) chain.after = after;
    }
    return plans;
  }

  /**
   * Starts several networks (`up`, and `apply` of running networks) as one batch: one observation,
   * each network planned from it, all their ip lines in one `ip -batch`, all their nft scripts in
   * one transaction, the file writes and dnsmasq starts side by side (executeStart), and one
   * verifying observation. All or nothing: when a step fails, everything the batch did is undone
   * and the networks start one by one instead (startLocked), so that the failing network names
   * itself and the others still start. Bridged networks, a renamed bridge, plans with steps other
   * than ip, nft, sysctl, file writes and dnsmasq starts, and dry runs take the one-by-one path.
   */
  private async startMany(state: StateData, names: string[], dryRun: boolean): Promise<NetworkPlan[]> {
    const one = async (list: string[]): Promise<NetworkPlan[]> => {
      const chain: StartChain = {};
      const plans: NetworkPlan[] = [];
      for (const n of list) plans.push(...(await this.startLocked(state, n, dryRun, { chain })));
      return plans;
    };
    if (dryRun || names.length < 2) return one(names);
    const all = await this.store.listApplied();
    const appliedOf = new Map(all.map((a) => [a.network, a]));
    const batch: NetworkDef[] = [];
    const alone: string[] = [];
    for (const n of names) {
      const def = Engine.getDef(state, n);
      const a = appliedOf.get(n);
      if (driverFor(def.mode).capabilities.uplink || (a && a.bridge !== def.bridge)) alone.push(n);
      else batch.push(def);
    }
    if (batch.length < 2) return one(names);
    const alonePlans = await one(alone);
    const plans: NetworkPlan[] = [];
    const oneByOne = async (): Promise<NetworkPlan[]> => [
      ...alonePlans,
      ...(await one(batch.map((d) => d.name))),
    ];
    const scope = {
      defs: batch,
      applied: batch.flatMap((d) => appliedOf.get(d.name) ?? []),
    };
    const obs = await this.observeFor(scope.defs, scope.applied);
    const allApplied = alone.length ? await this.store.listApplied() : all;
    const ctx = { paths: this.paths, firewall: this.firewall };
    interface Item {
      def: NetworkDef;
      plan: NetworkPlan;
      firewall: AppliedFirewall;
      previous: AppliedNetwork | undefined;
      rec: AppliedNetwork;
      ports: PortDef[];
      dnat: DnatEntry[];
      peers: string[];
    }
    const items: Item[] = [];
    for (const def of batch) {
      const previous = appliedOf.get(def.name);
      try {
        this.checkStartable(def, obs, previous, allApplied);
      } catch {
        // The one-by-one path throws the same error at the same point (after the others started).
        return oneByOne();
      }
      const ports = portsOf(state, def.name);
      const dnat = dnatOf(state, def);
      const peers = peersOf(state, def);
      const { plan, firewall } = planStart(
        def,
        driverFor(def.mode),
        obs,
        previous,
        ctx,
        ports,
        dnat,
        peers,
        {},
      );
      plans.push(plan);
      const unchanged = previous?.state === 'active' && JSON.stringify(previous.def) === JSON.stringify(def);
      if (plan.steps.length === 0 && unchanged) continue;
      const pid = runningDnsmasq(previous, obs, this.paths.dnsmasqConf(def.name));
      const rec = this.startRecord(def, previous, mergeFirewall(previous?.firewall, firewall), pid);
      items.push({ def, plan, firewall, previous, rec, ports, dnat, peers });
    }
    const bridgeStep = await this.bridgeTableStep(
      state,
      batch.map((d) => d.name),
      undefined,
      obs,
    );
    const runnable = items.every((i) => i.plan.steps.every(runsSideBySide));
    const closed = await Promise.all(items.map((i) => firstUntraversable(this.paths.netRunDir(i.def.name))));
    if (!runnable || closed.some((c) => c !== null)) return oneByOne();
    if (items.length === 0 && !bridgeStep) return [...alonePlans, ...plans];

    const steps = mergeSteps(
      items.map((i) => i.plan.steps),
      bridgeStep,
    );
    // The bridge table's change is shown with the first network that changes the firewall (or
    // the first network); it is applied with all of them (in `steps`).
    const shownWith = plans.find((p) => p.steps.some((x) => x.kind === 'nft')) ?? plans[0];
    if (shownWith && bridgeStep) joinBridgeStep(shownWith.steps, { ...bridgeStep });
    const reverter = new Reverter();
    reverter.add('restore the applied records', async () => {
      await Promise.all(
        items.map((i) =>
          i.previous ? this.store.saveApplied(i.previous) : this.store.removeApplied(i.def.name),
        ),
      );
      await removeIfEmpty(this.paths.appliedDir);
    });
    // A crash half-way through the last start may have left temporary files (writeAtomic).
    await Promise.all(
      [this.paths.appliedDir, ...items.map((i) => this.paths.netRunDir(i.def.name))].map(removeStaleTemps),
    );
    const changedRecs = items.filter((i) => !sameRecord(i.previous, i.rec));
    if (changedRecs.length) {
      await Promise.all(changedRecs.map((i) => this.store.saveApplied(i.rec)));
      stepApplied();
    }
    const byConf = new Map(items.map((i) => [i.rec.dnsmasq?.confFile, i.rec]));
    let kernel: KernelView;
    try {
      kernel = await this.executeStart(
        steps,
        reverter,
        (pid, conf) => {
          const d = byConf.get(conf)?.dnsmasq;
          if (d) d.pid = pid;
        },
        { scope, base: obs },
      );
      for (const i of items) {
        i.rec.state = 'active';
        i.rec.firewall = i.firewall;
      }
      await Promise.all(
        items.filter((i) => !sameRecord(i.previous, i.rec)).map((i) => this.store.saveApplied(i.rec)),
      );
    } catch (e) {
      const undoFailures = await reverter.revert();
      await Promise.all(
        items.filter((i) => !i.previous).map((i) => removeIfEmpty(this.paths.netRunDir(i.def.name))),
      );
      await removeIfEmpty(this.paths.netRunRoot);
      const msg = e instanceof Error ? e.message : String(e);
      if (undoFailures.length) {
        throw failure(
          'start-failed',
          `start of networks ${items.map((i) => `"${i.def.name}"`).join(', ')} failed: ${msg}; rollback incomplete: ${undoFailures.join('; ')}`,
          { cause: e },
        );
      }
      this.note(`starting ${items.length} networks together failed (${msg}); starting them one by one`);
      return oneByOne();
    }
    reverter.success();
    const recs = new Map(items.map((i) => [i.def.name, i.rec]));
    const after = await rescope(this.host, this.firewall, this.paths, kernel, {
      defs: batch,
      applied: batch.flatMap((d) => recs.get(d.name) ?? appliedOf.get(d.name) ?? []),
    });
    for (const i of items) this.checkApplied(i.def, i.rec, i.ports, i.dnat, i.peers, after);
    await this.verifyBridgeTable(
      state,
      batch.map((d) => d.name),
      after,
    );
    return [...alonePlans, ...plans];
  }

  /** The applied record of a network being started (state `starting` until its steps are done). */
  private startRecord(
    def: NetworkDef,
    applied: AppliedNetwork | undefined,
    firewall: AppliedFirewall,
    dnsmasqPid: number | undefined,
  ): AppliedNetwork {
    const name = def.name;
    return {
      version: 1,
      network: name,
      state: applied?.state === 'active' ? 'active' : 'starting',
      def,
      bridge: def.bridge,
      firewall,
      dnsmasq: {
        confFile: this.paths.dnsmasqConf(name),
        pidFile: this.paths.dnsmasqPid(name),
        ...(dnsmasqPid === undefined ? {} : { pid: dnsmasqPid }),
      },
      runDir: this.paths.netRunDir(name),
      updatedAt: '',
    };
  }

  /**
   * Starts a bridged network in one step: the uplink moves under the bridge (its MAC, addresses and
   * routes), then the gateway (or a neighbour) must answer through the bridge within the timeout;
   * if not, everything is put back exactly and the start fails with what was observed. A running
   * bridged network only gets its ports re-plugged.
   */
  private async startBridged(
    state: StateData,
    def: NetworkDef,
    dryRun: boolean,
    timeoutS: number,
  ): Promise<NetworkPlan[]> {
    const name = def.name;
    const uplink = def.uplink ?? '';
    const applied = await this.store.loadApplied(name);
    const obs = await this.observeFor([], applied ? [applied] : []);
    const ports = portsOf(state, name);
    if (applied?.state === 'active' && applied.uplink) {
      const drift = bridgedDrift(def.bridge, applied.uplink, obs.links, obs.addrs, obs.routes);
      if (drift.length) {
        throw failure('bridged-drift', `bridged network "${name}" drifted: ${drift.join('; ')}`, {
          hint: `stop it (which puts ${uplink} back as it was) and start it again`,
        });
      }
      const plan: NetworkPlan = { network: name, action: 'update', steps: planPorts(ports, def.bridge, obs) };
      joinBridgeStep(plan.steps, await this.bridgeTableStep(state, name, undefined, obs));
      if (!dryRun) await this.runAtomically(plan);
      return [plan];
    }
    if (def.uplink === undefined) return this.startHostBridge(state, def, obs, applied, dryRun);
    // A start that was cut short (crash) resumes from the snapshot it stored before touching the
    // NIC: the NIC may already be under the bridge, its addresses moved, so a new snapshot would lie.
    const resume =
      applied?.state === 'starting' && applied.uplink?.ifname === uplink ? applied.uplink : undefined;
    const link = obs.links.get(uplink);
    if (!link)
      throw inputError(
        'uplink-missing',
        `uplink ${uplink} of "${name}" does not exist on this host`,
        'name an existing NIC; see `ip link`',
      );
    if (await this.host.isWireless(uplink)) {
      throw inputError(
        'uplink-wireless',
        `uplink ${uplink} is a wireless NIC, which cannot be a bridge port (802.11 drops frames from foreign MACs)`,
        'use a nat or routed network for guests behind a wireless uplink',
      );
    }
    if (link.master !== undefined && !(resume && link.master === def.bridge)) {
      throw inputError(
        'uplink-enslaved',
        `uplink ${uplink} is already a port of ${link.master}`,
        `take it out of ${link.master} first, or bridge guests onto ${link.master}`,
      );
    }
    if (link.kind === 'bridge' || link.flags.includes('LOOPBACK')) {
      throw inputError(
        'uplink-invalid',
        `uplink ${uplink} is a ${link.kind ?? 'loopback'} device, not a NIC`,
        'name the physical NIC, e.g. eth1',
      );
    }
    if (obs.links.has(def.bridge) && !resume) {
      throw inputError(
        'bridge-taken',
        `interface ${def.bridge} already exists and is not kvmnet's`,
        `remove it, or give network "${name}" another bridge`,
      );
    }
    const snap = resume ?? snapshotUplink(link, obs.addrs, obs.routes);
    const notes: string[] = [];
    if (snap.addrs.some((a) => a.dynamic)) {
      notes.push(
        `${uplink}'s address is dynamic (DHCP): it stays on ${def.bridge}, but the host's DHCP client must now run on ${def.bridge} (\`kvmnet net persist ${name}\` writes that)`,
      );
    }
    const target = snap.addrs.length ? checkTarget(snap, await this.host.neighbors(uplink)) : undefined;
    const steps: Step[] = [
      {
        kind: 'ip',
        why: `move ${uplink} (${snap.mac}${snap.addrs.length ? `, ${snap.addrs.map((a) => a.cidr).join(', ')}` : ', no address'}) under bridge ${def.bridge}`,
        lines: takeoverLines(def.bridge, snap),
        undo: restoreLines(def.bridge, snap),
        // Resuming: every line is tried, those already done fail harmlessly (exists / not there).
        ...(resume ? { force: true } : {}),
      },
    ];
    if (target)
      steps.push({
        kind: 'check',
        why: `the host must still reach the LAN`,
        target,
        dev: def.bridge,
        timeoutS,
      });
    else if (snap.addrs.length)
      notes.push(`no gateway or neighbour of ${uplink} is known: the connectivity check is skipped`);
    steps.push(...planPorts(ports, def.bridge, obs));
    joinBridgeStep(steps, await this.bridgeTableStep(state, name, undefined, obs));
    const plan: NetworkPlan = { network: name, action: 'start', steps };
    for (const n of notes) this.note(n);
    if (dryRun) return [plan];

    const rec: AppliedNetwork = {
      version: 1,
      network: name,
      state: 'starting',
      def: { ...def, mac: snap.mac },
      bridge: def.bridge,
      firewall: { chains: [], elements: [] },
      dnsmasq: null,
      runDir: this.paths.netRunDir(name),
      uplink: snap,
      updatedAt: '',
    };
    const reverter = new Reverter();
    reverter.add('remove the applied record', async () => {
      await this.store.removeApplied(name);
      await removeIfEmpty(this.paths.appliedDir);
    });
    if (!sameRecord(applied, rec)) {
      await this.store.saveApplied(rec);
      stepApplied();
    }
    try {
      await this.execute(steps, reverter, () => {});
    } catch (e) {
      const undoFailures = await reverter.revert();
      throw failure(
        'start-failed',
        `start of bridged network "${name}" failed: ${e instanceof Error ? e.message : String(e)}; ${undoFailures.length ? `rollback incomplete: ${undoFailures.join('; ')}` : `${uplink} was put back as it was`}`,
        { ...(e instanceof KvmnetError && e.hint ? { hint: e.hint } : {}), cause: e },
      );
    }
    rec.state = 'active';
    await this.store.saveApplied(rec);
    const after = await this.observeFor([], [rec]);
    const drift = bridgedDrift(def.bridge, snap, after.links, after.addrs, after.routes);
    if (drift.length)
      throw failure(
        'verify-failed',
        `bridged network "${name}" does not match after start: ${drift.join('; ')}`,
      );
    return [plan];
  }

  /** A bridged network on a bridge the host already has: plug kvmnet's ports into it, nothing else. */
  private async startHostBridge(
    state: StateData,
    def: NetworkDef,
    obs: Observed,
    applied: AppliedNetwork | undefined,
    dryRun: boolean,
  ): Promise<NetworkPlan[]> {
    const br = obs.links.get(def.bridge);
    if (!br || br.kind !== 'bridge') {
      throw inputError(
        'bridge-missing',
        `host bridge ${def.bridge} of network "${def.name}" ${br ? `is a ${br.kind ?? 'device'}, not a bridge` : 'does not exist'}`,
        'create the bridge on the host (its network configuration owns it), or give the network an --uplink',
      );
    }
    const plan: NetworkPlan = {
      network: def.name,
      action: applied?.state === 'active' ? 'update' : 'start',
      steps: planPorts(portsOf(state, def.name), def.bridge, obs),
    };
    joinBridgeStep(plan.steps, await this.bridgeTableStep(state, def.name, undefined, obs));
    if (dryRun) return [plan];
    const rec: AppliedNetwork = {
      version: 1,
      network: def.name,
      state: 'active',
      def,
      bridge: def.bridge,
      firewall: { chains: [], elements: [] },
      dnsmasq: null,
      runDir: this.paths.netRunDir(def.name),
      hostBridge: true,
      updatedAt: '',
    };
    if (!sameRecord(applied, rec)) await this.store.saveApplied(rec);
    await this.runAtomically(plan);
    return [plan];
  }

  private checkStartable(
    def: NetworkDef,
    obs: Observed,
    applied: AppliedNetwork | undefined,
    allApplied: AppliedNetwork[],
  ): void {
    const link = obs.links.get(def.bridge);
    if (link && !applied && (link.kind !== 'bridge' || link.address !== def.mac)) {
      throw inputError(
        'bridge-taken',
        `interface ${def.bridge} already exists and is not kvmnet's (${link.kind ?? 'device'} ${link.address})`,
        `remove it, or give network "${def.name}" another bridge`,
      );
    }
    const own = Engine.ownBridges(allApplied);
    own.add(def.bridge);
    const usage = hostUsage(obs, own);
    const c = parseCidr(l3(def).subnet);
    for (const p of usage.prefixes) {
      const pc = parseCidr(p.cidr);
      if (c && pc && pc.prefix > 0 && overlaps(c, pc)) {
        throw inputError(
          'subnet-overlap',
          `subnet ${formatCidr(c)} of "${def.name}" overlaps ${p.cidr} (${p.where}) on this host`,
          "remove that address or route, or change the network's subnet",
        );
      }
    }
  }

  /**
   * Observes the network again from `kernel` (what the kernel reports since the plan's steps:
   * executeStart lists again only what they changed) with its files and processes read again,
   * and checks that it now matches (checkApplied).
   */
  private async verify(
    def: NetworkDef,
    rec: AppliedNetwork,
    ports: PortDef[],
    dnat: DnatEntry[],
    peers: string[],
    kernel: KernelView,
  ): Promise<Observed> {
    const obs = await rescope(this.host, this.firewall, this.paths, kernel, { defs: [def], applied: [rec] });
    this.checkApplied(def, rec, ports, dnat, peers, obs);
    return obs;
  }

  /** A network as applied must plan nothing against what was observed after the apply. */
  private checkApplied(
    def: NetworkDef,
    rec: AppliedNetwork,
    ports: PortDef[],
    dnat: DnatEntry[],
    peers: string[],
    obs: Observed,
  ): void {
    const ctx = { paths: this.paths, firewall: this.firewall };
    const { plan } = planStart(def, driverFor(def.mode), obs, rec, ctx, ports, dnat, peers);
    // nft from the records (a start's fast path, not listed after its committed delta) is not
    // compared: it lacks what the transaction added, so the plan would add it again.
    const steps = obs.fw.fromRecords ? plan.steps.filter((s) => s.kind !== 'nft') : plan.steps;
    if (steps.length > 0) {
      throw failure(
        'verify-failed',
        `network "${def.name}" does not match after apply: ${steps.map((s) => `${s.kind}: ${s.why}`).join('; ')}`,
        {
          hint: 'something else changed the host at the same time; run the command again',
        },
      );
    }
  }

  /** table bridge kvmnet (anti-spoofing) for the running networks, plus `start`, minus `stop`. */
  private async bridgeTableStep(
    state: StateData,
    start?: string | string[],
    stop?: string | string[],
    obs?: Pick<Observed, 'bridgeTable'>,
  ) {
    const running = new Set((await this.store.listApplied()).map((a) => a.network));
    const list = (x: string | string[] | undefined): string[] =>
      x === undefined ? [] : typeof x === 'string' ? [x] : x;
    for (const n of list(start)) running.add(n);
    for (const n of list(stop)) running.delete(n);
    return planBridgeTable(this.host, this.paths, state, running, obs?.bridgeTable);
  }

  private async verifyBridgeTable(state: StateData, name: string | string[], obs: Observed): Promise<void> {
    const again = await this.bridgeTableStep(state, name, undefined, obs);
    if (again) {
      throw failure(
        'verify-failed',
        `network ${typeof name === 'string' ? `"${name}"` : name.map((n) => `"${n}"`).join(', ')}: table bridge kvmnet does not match after apply: ${again.why}`,
        {
          hint: 'something else changed the host at the same time; run the command again',
        },
      );
    }
  }

  /**
   * Stops several networks (`down`, and `apply` of a file that leaves running networks out) as one
   * batch: one observation, their nft removals and the bridge table's change in one transaction,
   * their bridges deleted in one `ip -batch`, their dnsmasqs stopped side by side, then their files
   * and records removed. When a step fails, each network is stopped on its own (stopLocked), which
   * finishes what the batch left and names what fails. Bridged networks (their uplink must get its
   * addresses back, checked one by one) and networks on a host bridge stop on their own.
   */
  private async stopMany(names: string[], dryRun: boolean): Promise<NetworkPlan[]> {
    const one = async (list: string[]): Promise<NetworkPlan[]> => {
      const plans: NetworkPlan[] = [];
      for (const n of list) plans.push(await this.stopLocked(n, dryRun));
      return plans;
    };
    const all = await this.store.listApplied();
    const wanted = new Set(names);
    const batch = all.filter((a) => wanted.has(a.network) && !a.uplink && !a.hostBridge);
    if (dryRun || batch.length < 2) return one(names);
    const inBatch = new Set(batch.map((a) => a.network));
    const alonePlans = await one(names.filter((n) => !inBatch.has(n)));
    const othersRemain = (await this.store.listApplied()).some(
      (a) => !inBatch.has(a.network) && (a.firewall.chains.length > 0 || a.firewall.elements.length > 0),
    );
    const obs = await this.observeFor([], batch);
    const ctx = { paths: this.paths, firewall: this.firewall };
    const plans = batch.map((a) => planStop(a, obs, othersRemain, ctx));
    const state = await this.store.load();
    const bridgeStep = await this.bridgeTableStep(state, undefined, [...inBatch], obs);
    const flat = plans.flatMap((p) => p.steps);
    const ips = flat.filter((x): x is Extract<Step, { kind: 'ip' }> => x.kind === 'ip');
    // The removal scripts of several networks can be one and the same (each deletes the table
    // when no other network keeps rules in it): each distinct script once.
    const scripts = [...new Set(flat.flatMap((x) => (x.kind === 'nft' ? [x.script] : [])))];
    if (bridgeStep) scripts.push(bridgeStep.script);
    const shownWith = plans.find((p) => p.steps.some((x) => x.kind === 'nft')) ?? plans[0];
    if (shownWith && bridgeStep) joinBridgeStep(shownWith.steps, { ...bridgeStep });
    const sideBySide: Step[] = [
      ...flat.filter((x) => x.kind === 'dnsmasq-stop'),
      ...(scripts.length
        ? [{ kind: 'nft' as const, why: "remove the networks' rules", script: scripts.join(''), undo: '' }]
        : []),
      ...(ips.length
        ? [{ kind: 'ip' as const, why: 'delete the bridges', lines: ips.flatMap((x) => x.lines), undo: [] }]
        : []),
    ];
    try {
      await allDone(sideBySide.map((x) => this.execute([x], new Reverter(), () => {})));
      await allDone(
        flat.filter((x) => x.kind === 'remove').map((x) => this.execute([x], new Reverter(), () => {})),
      );
    } catch (e) {
      this.note(
        `stopping ${batch.length} networks together failed (${e instanceof Error ? e.message : String(e)}); stopping them one by one`,
      );
      return [...alonePlans, ...(await one([...inBatch]))];
    }
    await Promise.all(batch.map((a) => this.store.removeApplied(a.network)));
    await removeIfEmpty(this.paths.appliedDir);
    await removeIfEmpty(this.paths.netRunRoot);
    return [...alonePlans, ...plans];
  }

  /** Tears a network down from its applied record. Continues past failures, keeping the record if any. */
  private async stopLocked(name: string, dryRun: boolean): Promise<NetworkPlan> {
    const applied = await this.store.loadApplied(name);
    if (!applied) return { network: name, action: 'stop', steps: [] };
    const all = await this.store.listApplied();
    // The table goes with the last network that has rules in it (bridged and open networks have none).
    const others = all.filter(
      (a) => a.network !== name && (a.firewall.chains.length > 0 || a.firewall.elements.length > 0),
    );
    // Steps of the fast path that ran before it fell back: the result lists them with the rest.
    const done: Step[] = [];
    if (!dryRun) {
      const fast = await this.planStopFromRecord(applied, all, others.length > 0);
      if (fast) {
        const r = await this.runStopSteps(fast.steps);
        if (r.errors.length === 0) {
          await this.forgetStopped(name);
          return fast;
        }
        done.push(...r.done);
        this.note(`stop of network "${name}": ${r.errors.join('; ')}; observing the host to finish it`);
      }
    }
    const obs = await this.observeFor([], [applied]);
    const plan = planStop(applied, obs, others.length > 0, { paths: this.paths, firewall: this.firewall });
    joinBridgeStep(plan.steps, await this.bridgeTableStep(await this.store.load(), undefined, name, obs));
    if (applied.hostBridge) {
      // Unplug kvmnet's own ports from the host's bridge; the bridge itself stays.
      const state = await this.store.load();
      const lines = portsOf(state, name)
        .filter((p) => p.tap !== 'libvirt' && obs.links.get(p.name)?.master === applied.bridge)
        .map((p) => `link set dev ${p.name} nomaster`);
      if (lines.length)
        plan.steps.unshift({
          kind: 'ip',
          why: `unplug the network's ports from host bridge ${applied.bridge}`,
          lines,
          undo: [],
        });
    }
    if (dryRun) return plan;
    const { errors } = await this.runStopSteps(plan.steps);
    plan.steps.unshift(...done);
    if (applied.uplink && errors.length === 0) {
      // The uplink must have its addresses and routes back before the record goes.
      const up = applied.uplink;
      const after = await this.observeHostNet();
      for (const a of up.addrs) {
        if (!after.addrs.some((x) => x.ifname === up.ifname && x.cidr === a.cidr))
          errors.push(`address ${a.cidr} is not back on ${up.ifname}`);
      }
      for (const r of up.routes) {
        if (!after.routes.some((x) => x.dev === up.ifname && x.dst === r.dst && x.gateway === r.gateway)) {
          errors.push(`route ${r.dst}${r.gateway ? ` via ${r.gateway}` : ''} is not back on ${up.ifname}`);
        }
      }
    }
    if (errors.length) {
      throw failure('stop-failed', `stop of network "${name}" incomplete: ${errors.join('; ')}`, {
        hint: 'fix the cause and run the stop again; it finishes what is left',
      });
    }
    await this.forgetStopped(name);
    return plan;
  }

  /** The record of a stopped network goes, and kvmnet's directories with the last one. */
  private async forgetStopped(name: string): Promise<void> {
    await this.store.removeApplied(name);
    await removeIfEmpty(this.paths.appliedDir);
    await removeIfEmpty(this.paths.netRunRoot);
  }

  /**
   * Runs a stop's steps: they are independent (dnsmasq, nft, the bridge), so they run side by
   * side; the generated files go last, once dnsmasq is gone. A failed step does not stop the
   * others. Returns the steps done and the failures' messages.
   */
  private async runStopSteps(steps: Step[]): Promise<{ done: Step[]; errors: string[] }> {
    const run = async (step: Step): Promise<string | undefined> => {
      try {
        await this.execute([step], new Reverter(), () => {});
        return undefined;
      } catch (e) {
        return e instanceof Error ? e.message : String(e);
      }
    };
    // Each process start blocks this thread for a while (fork): the ip step, whose bridge deletion
    // waits longest for the kernel (RCU grace periods), starts first.
    const first = [
      ...steps.filter((s) => s.kind === 'ip'),
      ...steps.filter((s) => s.kind !== 'ip' && s.kind !== 'remove'),
    ];
    const results = await Promise.all(first.map(run));
    const order = [...first, ...steps.filter((x) => x.kind === 'remove')];
    for (const s of order.slice(first.length)) results.push(await run(s));
    return {
      done: order.filter((_, i) => results[i] === undefined),
      errors: results.filter((m): m is string => m !== undefined),
    };
  }

  /**
   * net stop's fast path: the plan from the applied record and the stored state alone, without
   * listing links or nft tables (that observation is 3 of a stop's 5 processes). Each step checks
   * itself: the `nft -f` transaction deletes exactly the network's recorded chains, elements and
   * flowtables and its forwards' elements (or the table, with the last network that has rules;
   * and its part of table bridge kvmnet, diffed against the table as applied) and fails as a
   * whole when one is missing; the bridge's deletion is guarded by setting its STP state to the
   * applied value, which fails on a link that is not a bridge. dnsmasq and the generated files are
   * found as the full path finds them (/proc and the run directory: no process). When a step
   * fails, stopLocked observes the host and finishes what is left, with a note.
   *
   * Null (the observed stop) when the network is not simply running as defined: half-started,
   * redefined or undefined since its start, bridged or on a host bridge, peered with another
   * network (their pair elements are shared), or without rules of its own.
   */
  private async planStopFromRecord(
    applied: AppliedNetwork,
    all: AppliedNetwork[],
    othersRemain: boolean,
  ): Promise<NetworkPlan | null> {
    const name = applied.network;
    const state = await this.store.load();
    const def = own(state.networks, name);
    if (!def || !Engine.simplyRunning(applied, def) || applied.firewall.chains.length === 0) return null;
    const peers = peersOf(state, def);
    if (peers.length > 0) return null;
    // Its steps run side by side: without nft or ip one would fail after the others changed the
    // host. The observed stop then fails first, naming the missing tool, and changes nothing.
    if (!(await onPath('nft')) || !(await onPath('ip'))) return null;
    const intent = driverFor(def.mode).firewall(def, dnatOf(state, def), peers);
    const running = new Set(all.map((a) => a.network));
    const after = new Set(running);
    after.delete(name);
    const [local, bridge] = await Promise.all([
      observeLocal(this.host, this.paths, { defs: [], applied: [applied] }),
      planBridgeFromRecord(this.paths, state, running, after),
    ]);
    const steps: Step[] = [];
    const pid = applied.dnsmasq ? runningDnsmasq(applied, local, applied.dnsmasq.confFile) : undefined;
    if (pid !== undefined) steps.push({ kind: 'dnsmasq-stop', why: 'network stops', pid });
    steps.push({
      kind: 'nft',
      why: othersRemain
        ? `remove the network's chains and elements from table inet kvmnet`
        : 'remove table inet kvmnet (no network uses it any more)',
      script: this.firewall.renderRecordedRemoval(applied.firewall, intent, othersRemain),
      undo: '',
    });
    joinBridgeStep(steps, bridge);
    steps.push({
      kind: 'ip',
      why: `delete bridge ${applied.bridge}`,
      lines: [
        `link set dev ${applied.bridge} type bridge stp_state ${def.stp ? 1 : 0}`,
        `link del dev ${applied.bridge}`,
      ],
      undo: [],
    });
    if (local.files.get(applied.runDir) !== null)
      steps.push({ kind: 'remove', why: 'generated files of the network', path: applied.runDir });
    return { network: name, action: 'stop', steps };
  }

  /**
   * Runs a start's steps with what does not depend on each other side by side: the bridge lane
   * (ip and sysctl steps, and the nft step when its script has a flowtable, whose devices must
   * exist), the nft transaction and each file write; then the dnsmasq starts, once all of those
   * are done (dnsmasq reads its files and binds to the bridge). A plan with any other kind of step
   * runs in order (execute). Every lane runs to its end before a failure is thrown, so the
   * reverter holds the undo of everything that was done. Returns the kernel's part of the
   * verifying observation: `verify.base` (the view the plan was made from) with what the steps
   * changed listed again (kernelChanges), read while dnsmasq starts (dnsmasq changes nothing the
   * kernel reports).
   */
  private async executeStart(
    steps: Step[],
    reverter: Reverter,
    onPid: (pid: number, confFile: string) => void,
    verify: { scope: { defs: NetworkDef[] }; base: KernelView; trustRecorded?: boolean },
  ): Promise<KernelView> {
    let net: NetState | undefined;
    const again = (): Promise<KernelView> =>
      relist(this.host, this.firewall, verify.scope, verify.base, kernelChanges(steps), {
        trustRecorded: verify.trustRecorded === true,
        ...(net ? { net } : {}),
      });
    if (!steps.every(runsSideBySide)) {
      await this.execute(steps, reverter, onPid);
      return again();
    }
    const bridgeLane = steps.filter(
      (s) => s.kind === 'ip' || s.kind === 'sysctl' || (s.kind === 'nft' && /\bflowtable\b/.test(s.script)),
    );
    // The verifying listing of links, addresses and routes comes from the lane's last ip step, in
    // its own process: nothing after it in any lane changes links (sysctls, nft, files).
    const lastIp = bridgeLane.filter((s) => s.kind === 'ip').at(-1);
    const listAfter = lastIp ? { step: lastIp, got: (n: NetState) => (net = n) } : undefined;
    const dnsmasqs = steps.filter((s) => s.kind === 'dnsmasq-start');
    const rest = steps.filter((s) => !bridgeLane.includes(s) && s.kind !== 'dnsmasq-start');
    // The lease files are made ready beside the bridge lane, so that each dnsmasq-start below
    // starts its process at once: dnsmasq takes longest, and a process start blocks this thread
    // for its fork, so dnsmasq goes first and the listing's processes after it.
    await allDone([
      this.execute(bridgeLane, reverter, onPid, listAfter ? { listAfter } : {}),
      ...rest.map((s) => this.execute([s], reverter, onPid)),
      ...dnsmasqs.map((s) => this.prepareLeaseFile(s, reverter)),
    ]);
    const started = allDone(dnsmasqs.map((s) => this.execute([s], reverter, onPid, { leasesReady: true })));
    const kernel = again();
    // Awaited below; when a dnsmasq start fails first, its answer is not wanted.
    kernel.catch(() => {});
    await started;
    return kernel;
  }

  /**
   * Before dnsmasq starts: its leases directory exists, and the reverter removes the lease file
   * (and the directory) if this start made them: dnsmasq creates its lease file before it may
   * fail to bind.
   */
  private async prepareLeaseFile(s: Step, reverter: Reverter): Promise<void> {
    if (s.kind !== 'dnsmasq-start') return;
    const leasesDirExisted = await exists(this.paths.leasesDir);
    const leaseExisted = await exists(s.leaseFile);
    reverter.add(`remove ${s.leaseFile}`, async () => {
      if (!leaseExisted) await removePath(s.leaseFile);
      if (!leasesDirExisted) await removeIfEmpty(this.paths.leasesDir);
    });
    await makeDirs(this.paths.leasesDir);
  }

  private async execute(
    steps: Step[],
    reverter: Reverter,
    onPid: (pid: number, confFile: string) => void,
    opts: {
      /** The dnsmasq-start steps' lease files were prepared already (prepareLeaseFile). */
      leasesReady?: boolean;
      /** This ip step lists the links, addresses and routes after its lines (Host.ipBatchListed). */
      listAfter?: { step: Step; got: (net: NetState) => void };
    } = {},
  ): Promise<void> {
    for (const s of steps) {
      switch (s.kind) {
        case 'ip':
          if (s.undo.length) {
            // Undos run with -force: a take-over that failed half-way still gets every line back.
            reverter.add(`ip ${s.undo.join('; ')}`, async () => {
              const err = await this.host.ipBatchForce(s.undo);
              if (err) this.note(`while undoing: ${err}`);
            });
          }
          if (s.force) {
            const err = await this.host.ipBatchForce(s.lines);
            if (err) this.note(`some lines did not apply (already as wanted?): ${err}`);
          } else if (opts.listAfter?.step === s) opts.listAfter.got(await this.host.ipBatchListed(s.lines));
          else await this.host.ipBatch(s.lines);
          break;
        case 'sysctl': {
          const old = await this.host.sysctlGet(s.key);
          await this.host.sysctlSet(s.key, s.value);
          reverter.add(`sysctl ${s.key}=${old}`, () => this.host.sysctlSet(s.key, old));
          break;
        }
        case 'nft':
          await this.firewall.apply(s.script);
          if (s.undo) reverter.add('nft rollback', () => this.firewall.apply(s.undo));
          break;
        case 'write': {
          const old = await readOrNull(s.path);
          reverter.add(`restore ${s.path}`, () =>
            old === null ? removePath(s.path) : writeAtomic(s.path, old),
          );
          // The generated files of a network (its run directory) are regenerated and compared on
          // every start: they need no fsync (see writeAtomic).
          await writeAtomic(s.path, s.content, s.mode, {
            durable: !s.path.startsWith(this.paths.netRunRoot + '/'),
          });
          break;
        }
        case 'remove':
          await removePath(s.path);
          break;
        case 'dnsmasq-start': {
          this.note(`starting dnsmasq (${s.confFile})`);
          if (!opts.leasesReady) await this.prepareLeaseFile(s, reverter);
          const pid = await this.host.startDnsmasq(s.confFile, s.pidFile);
          onPid(pid, s.confFile);
          reverter.add(`stop dnsmasq ${pid}`, async () => {
            await this.host.stopProcess(pid);
            await removePath(s.pidFile);
          });
          break;
        }
        case 'dnsmasq-stop':
          await this.host.stopProcess(s.pid);
          break;
        case 'dnsmasq-reload':
          this.host.sighup(s.pid);
          break;
        case 'check': {
          this.note(`checking that ${s.target} still answers through ${s.dev} (up to ${s.timeoutS} s)`);
          const r = await this.host.probe(s.target, s.dev, s.timeoutS);
          if (!r.ok) {
            throw failure(
              'connectivity-lost',
              `${s.target} did not answer through ${s.dev} within ${s.timeoutS} s (${r.tries} pings; last: ${r.last || 'no reply'})`,
              {
                hint: 'the uplink was put back as it was; check the uplink and the LAN, or raise --confirm-timeout',
              },
            );
          }
          break;
        }
      }
      stepApplied();
    }
  }
}

/**
 * The steps of several networks' start plans as one plan for executeStart: their ip lines in one
 * batch (undone in reverse), their nft scripts and the bridge table's in one transaction (an
 * undo several plans share, e.g. deleting the table they all found missing, appears once), each
 * sysctl once, then every file write and every dnsmasq start.
 */
export function mergeSteps(plans: Step[][], bridgeStep: Extract<Step, { kind: 'nft' }> | null): Step[] {
  const flat = plans.flat();
  const ips = flat.filter((s): s is Extract<Step, { kind: 'ip' }> => s.kind === 'ip');
  const nfts = flat.filter((s): s is Extract<Step, { kind: 'nft' }> => s.kind === 'nft');
  if (bridgeStep) nfts.push(bridgeStep);
  const sysctls = new Map<string, Step>();
  for (const s of flat) if (s.kind === 'sysctl' && !sysctls.has(s.key)) sysctls.set(s.key, s);
  const out: Step[] = [...sysctls.values()];
  if (ips.length)
    out.push({
      kind: 'ip',
      why: ips.map((s) => s.why).join('; '),
      lines: ips.flatMap((s) => s.lines),
      undo: [...ips].reverse().flatMap((s) => s.undo),
    });
  if (nfts.length)
    out.push({
      kind: 'nft',
      why: nfts.map((s) => s.why).join('; '),
      script: nfts.map((s) => s.script).join(''),
      undo: [...new Set([...nfts].reverse().map((s) => s.undo))].join(''),
    });
  out.push(...flat.filter((s) => s.kind === 'write'), ...flat.filter((s) => s.kind === 'dnsmasq-start'));
  return out;
}

/** The tap kvmnet makes for a port, or null: a libvirt port's tap is libvirt's (planPorts leaves it alone). */
function ownTap(port: PortDef): string | null {
  return isLibvirtPort(port) || port.name === '' ? null : port.name;
}

function deleteTapStep(p: PortDef): Step {
  return { kind: 'ip', why: `delete port ${portId(p)}`, lines: [`link del dev ${p.name}`], undo: [] };
}

/** Step kinds executeStart runs side by side (a forced ip batch, a bridged take-over, runs in order). */
function runsSideBySide(s: Step): boolean {
  return ['ip', 'sysctl', 'nft', 'write', 'dnsmasq-start'].includes(s.kind) && !(s.kind === 'ip' && s.force);
}

/** Waits for every promise to settle, then throws the first failure (if any). */
async function allDone(ps: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(ps)).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

export function forwardsOf(state: StateData, network: string): ForwardDef[] {
  return Object.values(state.forwards)
    .filter((f) => f.network === network)
    .sort(compareForwards);
}

function compareForwards(a: ForwardDef, b: ForwardDef): number {
  return (
    compareNames(a.network, b.network) ||
    compareNames(a.proto, b.proto) ||
    a.port - b.port ||
    compareNames(a.hostIp ?? '', b.hostIp ?? '')
  );
}

/** The bridges of the routed networks `def` is peered with (isolation exceptions, see peerBridgesOf). */
export function peersOf(state: StateData, def: NetworkDef): string[] {
  return peerBridgesOf(def, Object.values(state.networks));
}

/** The DNAT entries of a network's forwards, VM targets resolved to their current reservation. */
export function dnatOf(state: StateData, def: NetworkDef): DnatEntry[] {
  const ports = Object.values(state.ports);
  return forwardsOf(state, def.name).flatMap((f) => expandForward(f, targetAddress(f, { net: def, ports })));
}

export interface ForwardView extends ForwardDef {
  id: string;
  /** The guest address it reaches now. */
  targetIp: string | null;
  /** "tcp 8080 -> kvm1:80 (192.168.122.50:80)" */
  summary: string;
}

export function forwardView(state: StateData, f: ForwardDef): ForwardView {
  const net = own(state.networks, f.network);
  let ip: string | null;
  try {
    ip = net ? targetAddress(f, { net, ports: Object.values(state.ports) }) : null;
  } catch {
    ip = null;
  }
  const tp = portsText(f.targetPort, f.targetPort + f.portEnd - f.port);
  const host = `${f.hostIp ?? '*'}:${portsText(f.port, f.portEnd)}`;
  const summary = `${f.proto} ${host} -> ${f.target}:${tp}${ip && ip !== f.target ? ` (${ip}:${tp})` : ''}`;
  return { ...f, id: forwardId(f), targetIp: ip, summary };
}

export function portsOf(state: StateData, network: string): PortDef[] {
  return Object.values(state.ports)
    .filter((p) => p.network === network)
    .sort((a, b) => compareNatural(a.name, b.name));
}

export interface PortView extends PortDef {
  id: string;
  /** Always present in views (the stored port leaves defaults out). */
  spoofCheck: boolean;
  isolated: boolean;
  tapMac: string;
  qemu: string[];
}

export interface PortInfo extends PortView {
  /** Its network runs (the tap is plugged and checked). */
  running: boolean;
  /** The address of its DHCP lease, if it has one. */
  lease: string | null;
  /**
   * What table bridge kvmnet lets out of the tap: this MAC, and this IPv4 source (null: any, until
   * the port has a reservation or a lease); null when spoof-check is off.
   */
  allowedSource: { mac: string; ip: string | null } | null;
}

export function portView(p: PortDef): PortView {
  return {
    ...p,
    id: portId(p),
    tapMac: tapMac(p.mac),
    qemu: qemuArgs(p),
    spoofCheck: spoofCheckOf(p),
    isolated: p.isolated === true,
  };
}

export interface ShowPort {
  /** The tap ('' for a libvirt port whose domain is not running). */
  port: string;
  /** Who makes the tap: kvmnet (`port add`) or libvirt (`libvirt interface`, the hook). */
  tap: TapOwner;
  id: string;
  vm: string;
  mac: string;
  tapMac: string;
  ip: string | null;
  ipSource: 'reservation' | 'lease' | 'neighbour' | null;
  link: LinkState;
  /** The tap exists and is plugged into the bridge. */
  plugged: boolean;
  /** A guest (QEMU) holds the tap open: the kernel reports carrier. */
  carrier: boolean;
}

export interface ShowNetwork {
  network: string;
  mode: NetworkDef['mode'];
  bridge: string;
  /** null on a bridged network (the LAN owns the addressing). */
  subnet: string | null;
  gateway: string | null;
  uplink: string | null;
  state: NetworkState;
  ports: ShowPort[];
  forwards: ForwardView[];
}

function stateOf(applied: AppliedNetwork | undefined): NetworkState {
  if (!applied) return 'inactive';
  return applied.state === 'active' ? 'active' : 'failed';
}

function sameRecord(a: AppliedNetwork | undefined, b: AppliedNetwork): boolean {
  return (
    a !== undefined && JSON.stringify({ ...a, updatedAt: '' }) === JSON.stringify({ ...b, updatedAt: '' })
  );
}

function mergeFirewall(
  a: AppliedNetwork['firewall'] | undefined,
  b: AppliedNetwork['firewall'],
): AppliedNetwork['firewall'] {
  if (!a) return b;
  const keys = new Set(b.elements.map((e) => `${e.map}|${e.key}`));
  return {
    chains: [...new Set([...a.chains, ...b.chains])],
    elements: [...b.elements, ...a.elements.filter((e) => !keys.has(`${e.map}|${e.key}`))],
    ...(b.subnet === undefined ? {} : { subnet: b.subnet }),
    ...(a.flowtables?.length || b.flowtables?.length
      ? { flowtables: [...new Set([...(a.flowtables ?? []), ...(b.flowtables ?? [])])] }
      : {}),
  };
}

export function describeDef(d: NetworkDef): string[] {
  if (!isL3(d))
    return [`mode ${d.mode}`, `bridge ${d.bridge}`, `uplink ${d.uplink ?? '?'}`, `autostart ${d.autostart}`];
  return [
    `mode ${d.mode}`,
    `bridge ${d.bridge}`,
    `subnet ${d.subnet} gateway ${d.gateway}`,
    ...(d.forwardDev !== undefined ? [`forward dev ${d.forwardDev}`] : []),
    ...(d.peers?.length ? [`peers ${d.peers.join(', ')}`] : []),
    d.dhcp ? `dhcp ${d.dhcp.start}-${d.dhcp.end}` : 'dhcp off',
    ...(d.domain ? [`domain ${d.domain}`] : []),
    ...(d.mtu !== undefined ? [`mtu ${d.mtu}`] : []),
    ...(d.stp || d.forwardDelay ? [`stp ${d.stp ? 'on' : 'off'} forward delay ${d.forwardDelay ?? 0}`] : []),
    ...(d.leaseTime !== undefined
      ? [`lease time ${d.leaseTime === 0 ? 'infinite' : `${d.leaseTime} s`}`]
      : []),
    ...(d.dhcpHosts?.length ? [`${d.dhcpHosts.length} static DHCP host(s)`] : []),
    ...(d.dns?.enable === false ? ['dns off'] : []),
    ...(d.dns?.hosts?.length ? [`${d.dns.hosts.length} DNS host(s)`] : []),
    ...(d.dns?.forwarders?.length ? [`${d.dns.forwarders.length} DNS forwarder(s)`] : []),
    ...(d.dns?.srv?.length ? [`${d.dns.srv.length} SRV record(s)`] : []),
    ...(d.dns?.txt?.length ? [`${d.dns.txt.length} TXT record(s)`] : []),
    `autostart ${d.autostart}`,
  ];
}
