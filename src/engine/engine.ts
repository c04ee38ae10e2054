// The engine: every operation (define, start, stop, up, down, apply, ...) as
// lock → load → observe → plan → (dry-run: return the plan) → apply with rollback → verify.
// The CLI and, later, the daemon are thin layers over this class.
import { mkdir } from 'node:fs/promises';
import type { FirewallBackend } from '../firewall/backend.js';
import { NftablesBackend } from '../firewall/nftables.js';
import { Host } from '../host/host.js';
import { driverFor } from '../drivers/registry.js';
import { failure, inputError, KvmnetError } from '../model/errors.js';
import { formatCidr, overlaps, parseCidr } from '../model/ipv4.js';
import {
  buildNetwork,
  diffNetworks,
  pickBridgeName,
  type NetworkDef,
  type NetworkInput,
} from '../model/network.js';
import { exists, readOrNull, removeIfEmpty, removePath, writeAtomic } from './fsutil.js';
import { acquireLock } from './lock.js';
import { hostUsage, observe } from './observe.js';
import { Paths } from './paths.js';
import { planStart, planStop, type NetworkPlan, type Observed, type Step } from './plan.js';
import { Reverter } from './reverter.js';
import { Store, type AppliedNetwork, type StateData } from './store.js';

export interface EngineOptions {
  paths: Paths;
  host?: Host;
  firewall?: FirewallBackend;
  /** Progress notes for slow steps (the CLI prints them on stderr). */
  note?: (msg: string) => void;
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

export class Engine {
  readonly paths: Paths;
  readonly host: Host;
  readonly firewall: FirewallBackend;
  readonly store: Store;
  private readonly note: (msg: string) => void;

  constructor(opts: EngineOptions) {
    this.paths = opts.paths;
    this.host = opts.host ?? new Host();
    this.firewall = opts.firewall ?? new NftablesBackend(this.host);
    this.store = new Store(this.paths);
    this.note = opts.note ?? (() => {});
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.paths.lockFile, { note: this.note });
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  private async observeFor(defs: NetworkDef[], applied: AppliedNetwork[]): Promise<Observed> {
    return observe(this.host, this.firewall, this.paths, { defs, applied });
  }

  private static ownBridges(applied: AppliedNetwork[]): Set<string> {
    return new Set(applied.map((a) => a.bridge));
  }

  private static getDef(state: StateData, name: string): NetworkDef {
    const def = state.networks[name];
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
      .sort((a, b) => a.name.localeCompare(b.name))
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

  async exportDefinitions(): Promise<NetworkDef[]> {
    return Object.values((await this.store.load()).networks);
  }

  // ---- definitions ---------------------------------------------------------------------------

  async define(input: NetworkInput, opts: { dryRun: boolean }): Promise<OpResult & { network: NetworkDef }> {
    return this.locked(async () => {
      const state = await this.store.load();
      if (state.networks[input.name]) {
        throw inputError(
          'already-defined',
          `network "${input.name}" is already defined`,
          'pick another name, or `kvmnet net undefine` it first',
        );
      }
      const applied = await this.store.listApplied();
      const obs = await this.observeFor([], []);
      const usage = hostUsage(obs, Engine.ownBridges(applied));
      const others = Object.values(state.networks);
      const bridge =
        input.bridge ?? pickBridgeName(new Set([...others.map((o) => o.bridge), ...obs.links.keys()]));
      const def = buildNetwork({ ...input, bridge }, { others, host: usage });
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
      if (opts.dryRun) return result;
      delete state.networks[name];
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

  async start(name: string, opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      Engine.getDef(state, name);
      return {
        dryRun: opts.dryRun,
        definitions: [],
        plans: await this.startLocked(state, name, opts.dryRun),
        notes: [],
      };
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
      for (const def of Object.values(state.networks).sort((a, b) => a.name.localeCompare(b.name))) {
        if (def.autostart) result.plans.push(...(await this.startLocked(state, def.name, opts.dryRun)));
      }
      return result;
    });
  }

  /** Stops every running network; definitions are kept. */
  async down(opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const result: OpResult = { dryRun: opts.dryRun, definitions: [], plans: [], notes: [] };
      for (const rec of await this.store.listApplied())
        result.plans.push(await this.stopLocked(rec.network, opts.dryRun));
      return result;
    });
  }

  /** Makes the stored definitions equal to `inputs`; running networks follow their new definitions. */
  async apply(inputs: NetworkInput[], opts: { dryRun: boolean }): Promise<OpResult> {
    return this.locked(async () => {
      const state = await this.store.load();
      const applied = await this.store.listApplied();
      const obs = await this.observeFor([], []);
      const usage = hostUsage(obs, Engine.ownBridges(applied));
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
        let bridge = input.bridge ?? state.networks[input.name]?.bridge;
        if (bridge === undefined) {
          bridge = pickBridgeName(usedBridges);
          usedBridges.add(bridge);
        }
        defs.push(buildNetwork({ ...input, bridge }, { others: defs, host: usage }));
      }
      const result: OpResult = { dryRun: opts.dryRun, definitions: [], plans: [], notes: [] };
      const next: Record<string, NetworkDef> = {};
      for (const d of defs) {
        next[d.name] = d;
        const old = state.networks[d.name];
        if (!old) result.definitions.push({ network: d.name, change: 'define', details: describeDef(d) });
        else {
          const diff = diffNetworks(old, d);
          if (diff.length) result.definitions.push({ network: d.name, change: 'update', details: diff });
        }
      }
      const removed = Object.keys(state.networks).filter((n) => !next[n]);
      for (const n of removed) result.definitions.push({ network: n, change: 'undefine', details: [] });
      if (result.definitions.length === 0) return result;

      const running = new Set(applied.map((a) => a.network));
      for (const n of removed) if (running.has(n)) result.plans.push(await this.stopLocked(n, opts.dryRun));
      const newState: StateData = { ...state, networks: next };
      if (!opts.dryRun) await this.store.save(newState);
      for (const c of result.definitions) {
        if (c.change === 'update' && running.has(c.network))
          result.plans.push(...(await this.startLocked(newState, c.network, opts.dryRun)));
      }
      if (!opts.dryRun) {
        for (const n of removed) await removePath(this.paths.leaseFile(n));
      }
      return result;
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  private async stockDefault(state: StateData, notes: string[]): Promise<NetworkDef> {
    const applied = await this.store.listApplied();
    const obs = await this.observeFor([], []);
    const usage = hostUsage(obs, Engine.ownBridges(applied));
    const others = Object.values(state.networks);
    const taken = (cidr: string): string | undefined => {
      const c = parseCidr(cidr);
      if (!c) return 'invalid';
      for (const o of others) {
        const oc = parseCidr(o.subnet);
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
  private async startLocked(state: StateData, name: string, dryRun: boolean): Promise<NetworkPlan[]> {
    const def = Engine.getDef(state, name);
    const driver = driverFor(def.mode);
    let applied = await this.store.loadApplied(name);
    const plans: NetworkPlan[] = [];
    if (applied && applied.bridge !== def.bridge) {
      // The bridge is renamed: take the old one down first.
      plans.push(await this.stopLocked(name, dryRun));
      applied = dryRun ? applied : undefined;
    }
    const allApplied = await this.store.listApplied();
    const obs = await this.observeFor([def], applied ? [applied] : []);
    this.checkStartable(def, obs, applied, allApplied);
    const { plan, firewall } = planStart(def, driver, obs, applied, {
      paths: this.paths,
      firewall: this.firewall,
    });
    plans.push(plan);
    if (dryRun) return plans;
    const unchanged = applied?.state === 'active' && JSON.stringify(applied.def) === JSON.stringify(def);
    if (plan.steps.length === 0 && unchanged) return plans;

    const rec: AppliedNetwork = {
      version: 1,
      network: name,
      state: applied?.state === 'active' ? 'active' : 'starting',
      def,
      bridge: def.bridge,
      // Until this apply finishes, the record covers both the old and the new rules.
      firewall: mergeFirewall(applied?.firewall, firewall),
      dnsmasq: {
        confFile: this.paths.dnsmasqConf(name),
        pidFile: this.paths.dnsmasqPid(name),
        ...(applied?.dnsmasq?.pid === undefined ? {} : { pid: applied.dnsmasq.pid }),
      },
      runDir: this.paths.netRunDir(name),
      updatedAt: '',
    };
    const reverter = new Reverter();
    const previous = applied;
    reverter.add('restore the applied record', async () => {
      if (previous) await this.store.saveApplied(previous);
      else {
        await this.store.removeApplied(name);
        await removeIfEmpty(this.paths.appliedDir);
      }
    });
    await this.store.saveApplied(rec);
    try {
      await this.execute(plan.steps, reverter, (pid) => {
        if (rec.dnsmasq) rec.dnsmasq.pid = pid;
      });
      rec.state = 'active';
      rec.firewall = firewall;
      await this.store.saveApplied(rec);
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
    await this.verify(def, rec);
    return plans;
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
    const c = parseCidr(def.subnet);
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

  private async verify(def: NetworkDef, rec: AppliedNetwork): Promise<void> {
    const obs = await this.observeFor([def], [rec]);
    const { plan } = planStart(def, driverFor(def.mode), obs, rec, {
      paths: this.paths,
      firewall: this.firewall,
    });
    if (plan.steps.length > 0) {
      throw failure(
        'verify-failed',
        `network "${def.name}" does not match after apply: ${plan.steps.map((s) => `${s.kind}: ${s.why}`).join('; ')}`,
        {
          hint: 'something else changed the host at the same time; run the command again',
        },
      );
    }
  }

  /** Tears a network down from its applied record. Continues past failures, keeping the record if any. */
  private async stopLocked(name: string, dryRun: boolean): Promise<NetworkPlan> {
    const applied = await this.store.loadApplied(name);
    if (!applied) return { network: name, action: 'stop', steps: [] };
    const others = (await this.store.listApplied()).filter((a) => a.network !== name);
    const obs = await this.observeFor([], [applied]);
    const plan = planStop(applied, obs, others.length > 0, { paths: this.paths, firewall: this.firewall });
    if (dryRun) return plan;
    const errors: string[] = [];
    for (const step of plan.steps) {
      try {
        await this.execute([step], new Reverter(), () => {});
      } catch (e) {
        errors.push(e instanceof Error ? e.message : String(e));
      }
    }
    if (errors.length) {
      throw failure('stop-failed', `stop of network "${name}" incomplete: ${errors.join('; ')}`, {
        hint: 'fix the cause and run the stop again; it finishes what is left',
      });
    }
    await this.store.removeApplied(name);
    await removeIfEmpty(this.paths.appliedDir);
    await removeIfEmpty(this.paths.netRunRoot);
    return plan;
  }

  private async execute(steps: Step[], reverter: Reverter, onPid: (pid: number) => void): Promise<void> {
    for (const s of steps) {
      switch (s.kind) {
        case 'ip':
          if (s.undo.length) reverter.add(`ip ${s.undo.join('; ')}`, () => this.host.ipBatch(s.undo));
          await this.host.ipBatch(s.lines);
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
          await writeAtomic(s.path, s.content);
          break;
        }
        case 'remove':
          await removePath(s.path);
          break;
        case 'dnsmasq-start': {
          this.note(`starting dnsmasq (${s.confFile})`);
          // dnsmasq creates its lease file before it may fail to bind: undo that too.
          const leasesDirExisted = await exists(this.paths.leasesDir);
          const leaseExisted = await exists(s.leaseFile);
          reverter.add(`remove ${s.leaseFile}`, async () => {
            if (!leaseExisted) await removePath(s.leaseFile);
            if (!leasesDirExisted) await removeIfEmpty(this.paths.leasesDir);
          });
          await mkdir(this.paths.leasesDir, { recursive: true });
          const pid = await this.host.startDnsmasq(s.confFile, s.pidFile);
          onPid(pid);
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
      }
    }
  }
}

function stateOf(applied: AppliedNetwork | undefined): NetworkState {
  if (!applied) return 'inactive';
  return applied.state === 'active' ? 'active' : 'failed';
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
  };
}

export function describeDef(d: NetworkDef): string[] {
  return [
    `mode ${d.mode}`,
    `bridge ${d.bridge}`,
    `subnet ${d.subnet} gateway ${d.gateway}`,
    d.dhcp ? `dhcp ${d.dhcp.start}-${d.dhcp.end}` : 'dhcp off',
    ...(d.domain ? [`domain ${d.domain}`] : []),
    `autostart ${d.autostart}`,
  ];
}
