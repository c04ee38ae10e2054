// The firewall backend interface: domain verbs (bring a network's rules to an intent, remove them),
// planned against what the backend observes, so callers never build rule text themselves.
import type { ElementSpec, FirewallIntent } from '../render/nft.js';

/** What is applied for one network, as recorded, so teardown removes exactly that. */
export interface AppliedFirewall {
  chains: string[];
  /** The network's own elements; port forward elements are not listed (there may be thousands). */
  elements: ElementSpec[];
  /**
   * The subnet port forwards of this network lead into: forward elements whose target lies in it
   * are this network's (subnets never overlap), found by observation rather than listed here.
   */
  subnet?: string;
  /** The network's flowtables (flow offload), removed after its chains. */
  flowtables?: string[];
}

export interface FirewallObserved {
  table: boolean;
  skeletonOk: boolean;
  /** Base chains whose type, hook, priority or policy differ from kvmnet's (re-created on repair). */
  badBaseChains: string[];
  /** Base chains of an earlier kvmnet's skeleton still in the table (RETIRED_CHAINS; deleted on repair). */
  retiredChains: string[];
  /** chain name -> comments of its rules, in order. */
  chains: Map<string, Array<string | undefined>>;
  /** "map|key" -> jump target (undefined for set elements). */
  elements: Map<string, string | undefined>;
  /** Flowtables present in the table, by name. */
  flowtables?: Set<string>;
  /**
   * Made from the applied records rather than a listing (FirewallBackend.fromRecords): what the
   * records say, not what the kernel holds. A start planned from it takes its committed transaction
   * as the verification of its nft part (the kernel took all of it or nothing).
   */
  fromRecords?: true;
  /**
   * Whether the kernel accepts nftables flowtables (probed once per backend, i.e. per command or
   * daemon, and only when a nat network is planned). false: flow offload is skipped. Absent: not
   * probed, taken as present.
   */
  flowtableSupport?: boolean;
}

export interface FirewallChange {
  /** The nft transaction; empty when nothing needs to change. */
  script: string;
  /** Why, one line per difference (for --dry-run and verify errors). */
  reasons: string[];
  /** A script that undoes this change (for rollback), empty when nothing to undo. */
  undo: string;
  /** What will be applied for this network afterwards. */
  applied: AppliedFirewall;
}

export interface FirewallBackend {
  readonly name: string;
  /**
   * The firewall's current state. `probe: false` skips asking the kernel about flowtables when no
   * network in the plan could offload (its answer is only needed to plan a nat network's rules).
   */
  observe(opts?: { probe?: boolean }): Promise<FirewallObserved>;
  /**
   * The table as the applied records of the running networks say it is, without listing it, for
   * planning a network that has no record yet (net start's fast path): whether the table and its
   * skeleton exist, and no chain or element of that network (it has none). Every line such a plan
   * adds is idempotent or refused by the kernel when it finds another value under its key, all or
   * nothing, so the committed transaction is the verification; the start observes and plans again
   * when it fails.
   */
  fromRecords(recorded: AppliedFirewall[], opts?: { probe?: boolean }): Promise<FirewallObserved>;
  planNetwork(
    intent: FirewallIntent,
    previous: AppliedFirewall | undefined,
    obs: FirewallObserved,
  ): FirewallChange;
  /** othersRemain: other networks still use the table (if not, the whole table goes). */
  planRemove(applied: AppliedFirewall, obs: FirewallObserved, othersRemain: boolean): FirewallChange;
  /**
   * A network's removal from its record and its intent alone, without observing (net stop's fast
   * path): its recorded chains, elements and flowtables and its forwards' elements, or the table
   * when no other network uses it. Applied as one transaction, it fails as a whole when one of
   * them is missing (the table drifted); the caller then observes and plans (planRemove).
   */
  renderRecordedRemoval(applied: AppliedFirewall, intent: FirewallIntent, othersRemain: boolean): string;
  apply(script: string): Promise<void>;
  /**
   * A port forward change as a delta: add and remove these forward elements, touching nothing else
   * (O(1) in the number of forwards), in one transaction. Fails if the table drifted (an added key
   * mapped to another target, a removed key missing, the table or map gone); callers then
   * reconcile fully. Success means the kernel holds exactly that change.
   */
  applyForwardDelta(add: ElementSpec[], remove: ElementSpec[]): Promise<void>;
  /** The nft text a delta amounts to (for --dry-run). */
  renderForwardDelta(add: ElementSpec[], remove: ElementSpec[]): string;
}

export function elementKey(e: { map: string; key: string }): string {
  return `${e.map}|${e.key}`;
}
