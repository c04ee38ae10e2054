// The state store: stored definitions (versioned JSON in the state dir, written atomically under
// the lock) and applied records (run dir), which say exactly what a start created.
import { readdir } from 'node:fs/promises';
import type { AppliedFirewall } from '../firewall/backend.js';
import { failure } from '../model/errors.js';
import type { NetworkDef } from '../model/network.js';
import type { ForwardDef } from '../model/forward.js';
import type { UplinkSnapshot } from './bridged.js';
import type { PortDef } from '../model/port.js';
import { readOrNull, removePath, writeAtomic } from './fsutil.js';
import type { Paths } from './paths.js';

export const STATE_VERSION = 1;

export interface StateData {
  version: number;
  /** Set once `kvmnet up` has created the stock default network, so it is not created again. */
  initialized: boolean;
  networks: Record<string, NetworkDef>;
  /** Ports by tap name. */
  ports: Record<string, PortDef>;
  /** Port forwards by id (proto/[host ip/]ports: unique on the host). */
  forwards: Record<string, ForwardDef>;
}

export interface AppliedNetwork {
  version: number;
  network: string;
  /** "starting" until every step of a start succeeded; a crashed start is cleaned by the next stop. */
  state: 'starting' | 'active';
  def: NetworkDef;
  bridge: string;
  firewall: AppliedFirewall;
  dnsmasq: { confFile: string; pidFile: string; pid?: number } | null;
  /** Bridged networks: the uplink as it was before the take-over, restored exactly on stop. */
  uplink?: UplinkSnapshot;
  /** The bridge is the host's (a bridged network without uplink): never deleted, only unplugged from. */
  hostBridge?: boolean;
  runDir: string;
  updatedAt: string;
}

export class Store {
  /** The file's text each state load() returned was parsed from (see restore). */
  private readonly loadedFrom = new WeakMap<StateData, string>();

  constructor(readonly paths: Paths) {}

  async load(): Promise<StateData> {
    const raw = await readOrNull(this.paths.stateFile);
    if (raw === null)
      return { version: STATE_VERSION, initialized: false, networks: {}, ports: {}, forwards: {} };
    let data: StateData;
    try {
      data = JSON.parse(raw) as StateData;
    } catch (e) {
      throw failure('state-corrupt', `state file ${this.paths.stateFile} is not valid JSON`, {
        cause: e,
        hint: 'restore it from a backup or `kvmnet export` output',
      });
    }
    if (data.version > STATE_VERSION) {
      throw failure(
        'state-too-new',
        `state file ${this.paths.stateFile} has version ${data.version}, this kvmnet reads ${STATE_VERSION}`,
        {
          hint: 'upgrade kvmnet',
        },
      );
    }
    data.ports ??= {};
    data.forwards ??= {};
    this.loadedFrom.set(data, raw);
    return data;
  }

  /**
   * Puts the state file back as it was when load() returned `state`, even if `state` was changed
   * in place since (a forward added to its map: copying a map of thousands costs about 1 ms).
   * A state that load() did not return is saved as it is.
   */
  async restore(state: StateData): Promise<void> {
    const raw = this.loadedFrom.get(state);
    if (raw === undefined) return this.save(state);
    await writeAtomic(this.paths.stateFile, raw, 0o600);
  }

  async save(data: StateData): Promise<void> {
    // Compact: with thousands of forwards the file is rewritten on every change.
    await writeAtomic(
      this.paths.stateFile,
      JSON.stringify({ ...data, version: STATE_VERSION }) + '\n',
      0o600,
    );
  }

  async loadApplied(net: string): Promise<AppliedNetwork | undefined> {
    const raw = await readOrNull(this.paths.appliedFile(net));
    return raw === null ? undefined : (JSON.parse(raw) as AppliedNetwork);
  }

  async listApplied(): Promise<AppliedNetwork[]> {
    let names: string[];
    try {
      names = await readdir(this.paths.appliedDir);
    } catch {
      return [];
    }
    // Read side by side: with many running networks, one after the other cost 0.3 ms each.
    const recs = await Promise.all(
      names
        .filter((x) => x.endsWith('.json'))
        .sort()
        .map((n) => this.loadApplied(n.slice(0, -5))),
    );
    return recs.filter((r): r is AppliedNetwork => r !== undefined);
  }

  async saveApplied(rec: AppliedNetwork): Promise<void> {
    await writeAtomic(
      this.paths.appliedFile(rec.network),
      JSON.stringify({ ...rec, updatedAt: new Date().toISOString() }, null, 2) + '\n',
    );
  }

  async removeApplied(net: string): Promise<void> {
    await removePath(this.paths.appliedFile(net));
  }
}
