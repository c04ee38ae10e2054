// The nftables firewall backend: observes `table inet kvmnet` through `nft -j` and plans minimal
// transactions (skeleton if it drifted, one network's chains and elements) as `nft -f` text.
import type { Host } from '../host/host.js';
import { contains, parseCidr, parseIpv4 } from '../model/ipv4.js';
import {
  buildFragment,
  elementData,
  renderAddElements,
  renderChains,
  renderDeleteTable,
  renderRemoval,
  renderSkeleton,
  skeletonChains,
  skeletonTag,
  BASE_MAPS,
  BASE_SETS,
  RETIRED_CHAINS,
  type ElementSpec,
  type FirewallIntent,
  withoutOffload,
} from '../render/nft.js';
import {
  elementKey,
  type AppliedFirewall,
  type FirewallBackend,
  type FirewallChange,
  type FirewallObserved,
} from './backend.js';

type NftObj = Record<string, Record<string, unknown>>;

/** An element key or data as nft's text syntax writes it: "virbr0", "tcp . 8080", "10.0.0.5 . 80". */
function keyText(k: unknown): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number') return String(k);
  if (k && typeof k === 'object') {
    const o = k as {
      prefix?: { addr: string; len: number };
      elem?: { val: unknown };
      concat?: unknown[];
    };
    if (o.prefix) return `${o.prefix.addr}/${o.prefix.len}`;
    if (o.elem) return keyText(o.elem.val);
    if (o.concat) return o.concat.map(keyText).join(' . ');
  }
  return JSON.stringify(k);
}

/** Parses `nft -j list table` output into chains (rule comments) and map/set elements. */
export function parseNftJson(json: unknown): FirewallObserved {
  const obs: FirewallObserved = {
    table: false,
    skeletonOk: false,
    badBaseChains: [],
    retiredChains: [],
    chains: new Map(),
    elements: new Map(),
  };
  if (json === null) return obs;
  obs.table = true;
  const items = (json as { nftables?: NftObj[] }).nftables ?? [];
  const maps = new Set<string>();
  const decls = new Map<string, string>();
  for (const it of items) {
    if (it.chain) {
      const c = it.chain;
      obs.chains.set(String(c.name), []);
      decls.set(String(c.name), JSON.stringify([c.type, c.hook, c.prio, c.policy]));
    }
    if (it.flowtable) (obs.flowtables ??= new Set()).add(String(it.flowtable.name));
  }
  for (const it of items) {
    if (it.rule) {
      const chain = String(it.rule.chain);
      const list = obs.chains.get(chain) ?? [];
      list.push(typeof it.rule.comment === 'string' ? it.rule.comment : undefined);
      obs.chains.set(chain, list);
    }
    const m = it.map ?? it.set;
    if (m) {
      const name = String(m.name);
      maps.add(name);
      for (const e of (m.elem as unknown[] | undefined) ?? []) {
        if (Array.isArray(e)) {
          const data = e[1] as { jump?: { target?: string } } | undefined;
          obs.elements.set(
            `${name}|${keyText(e[0])}`,
            data?.jump ? data.jump.target : data === undefined ? undefined : keyText(data),
          );
        } else {
          obs.elements.set(`${name}|${keyText(e)}`, undefined);
        }
      }
    }
  }
  const tag = `kvmnet#${skeletonTag()}`;
  for (const c of skeletonChains()) {
    const d = decls.get(c.name);
    if (!c.json) continue;
    if (d !== undefined && d !== JSON.stringify([c.json.type, c.json.hook, c.json.prio, c.json.policy]))
      obs.badBaseChains.push(c.name);
  }
  obs.retiredChains = RETIRED_CHAINS.filter((c) => obs.chains.has(c));
  obs.skeletonOk =
    obs.badBaseChains.length === 0 &&
    obs.retiredChains.length === 0 &&
    skeletonChains().every((c) => {
      const got = obs.chains.get(c.name);
      return got !== undefined && got.length === c.rules.length && got.every((x) => x === tag);
    }) &&
    [...BASE_MAPS, ...BASE_SETS].every((m) => maps.has(m.name));
  return obs;
}

export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  private flowtableSupport: Promise<boolean> | undefined;
  /** probe: whether the kernel has flowtables (default: ask it once, with `nft -c`). */
  constructor(
    private readonly host: Host,
    private readonly probe: () => Promise<boolean> = () => host.nftFlowtableSupport(),
  ) {}

  async observe(opts: { probe?: boolean } = {}): Promise<FirewallObserved> {
    if (opts.probe !== false) this.flowtableSupport ??= this.probe();
    const obs = parseNftJson(await this.host.nftListTable('inet', 'kvmnet'));
    if (this.flowtableSupport) obs.flowtableSupport = await this.flowtableSupport;
    return obs;
  }

  async fromRecords(recorded: AppliedFirewall[], opts: { probe?: boolean } = {}): Promise<FirewallObserved> {
    if (opts.probe !== false) this.flowtableSupport ??= this.probe();
    const table = recorded.some((r) => r.chains.length > 0 || r.elements.length > 0);
    const obs: FirewallObserved = {
      table,
      skeletonOk: table,
      badBaseChains: [],
      retiredChains: [],
      chains: new Map(),
      elements: new Map(),
      fromRecords: true,
    };
    if (this.flowtableSupport) obs.flowtableSupport = await this.flowtableSupport;
    return obs;
  }

  planNetwork(
    intent: FirewallIntent,
    previous: AppliedFirewall | undefined,
    obs: FirewallObserved,
  ): FirewallChange {
    const f = buildFragment(withoutOffload(intent, obs.flowtableSupport !== false));
    // A network that needs no rules at all (mode open) creates no table and touches no skeleton;
    // it only removes what an earlier apply of it left (e.g. after a switch from nat).
    if (f.chains.length === 0 && f.elements.length === 0) return planNothing(intent, previous, obs);
    const reasons: string[] = [];
    let script = '';
    if (!obs.table) reasons.push('table inet kvmnet is missing');
    else if (!obs.skeletonOk) reasons.push("base chains of table inet kvmnet differ from kvmnet's");
    for (const c of obs.badBaseChains)
      reasons.push(`base chain ${c} has another type, hook, priority or policy`);
    // A base chain's hook or type cannot be changed in place: drop it and let the skeleton re-create
    // it. Base chains of an earlier skeleton go too (the skeleton rewrite keeps unknown chains).
    for (const c of obs.retiredChains)
      reasons.push(`base chain ${c} of an earlier kvmnet is no longer wanted`);
    script += renderRemoval([], [...obs.badBaseChains, ...obs.retiredChains]);
    if (!obs.table || !obs.skeletonOk) script += renderSkeleton();

    // Stale parts of a previous apply (e.g. the NAT chain after a switch to routed). An element is
    // removed only while it still holds what this network put there: the same key may since
    // belong to another network (a forward moved from one network to another).
    const wanted = new Set(f.elements.map(elementKey));
    const staleElems: ElementSpec[] = [
      ...(previous?.elements ?? []).filter((e) => !wanted.has(elementKey(e)) && stillOurs(e, obs)),
      // Forwards into this subnet that are no longer wanted (removed, or added by hand).
      ...forwardElementsInto(intent.subnet, obs).filter((e) => !wanted.has(elementKey(e))),
    ];
    const wantedChains = new Set(f.chains.map((c) => c.name));
    const staleChains = (previous?.chains ?? []).filter((c) => !wantedChains.has(c) && obs.chains.has(c));
    for (const e of staleElems) reasons.push(`element ${e.key} in ${e.map} is no longer wanted`);
    for (const c of staleChains) reasons.push(`chain ${c} is no longer wanted`);
    const wantedFts = new Set(f.flowtables.map((t) => t.name));
    const staleFts = (previous?.flowtables ?? []).filter((t) => !wantedFts.has(t) && obs.flowtables?.has(t));
    for (const t of staleFts) reasons.push(`flowtable ${t} is no longer wanted`);
    script += renderRemoval(staleElems, staleChains, staleFts);

    const comment = `${f.network}#${f.tag}`;
    let chainsOk = obs.table;
    for (const c of f.chains) {
      const got = obs.chains.get(c.name);
      if (!got) {
        if (obs.table) reasons.push(`chain ${c.name} is missing`);
        chainsOk = false;
      } else if (got.length !== c.rules.length || got.some((x) => x !== comment)) {
        reasons.push(`chain ${c.name} has ${got.length} rules not matching the ${c.rules.length} expected`);
        chainsOk = false;
      }
    }
    for (const t of f.flowtables) {
      if (obs.table && !obs.flowtables?.has(t.name)) {
        reasons.push(`flowtable ${t.name} is missing`);
        chainsOk = false;
      }
    }
    if (!chainsOk) script += renderChains(f);

    // Elements one by one: adding the 1,000th forward adds one element.
    const missing: ElementSpec[] = [];
    const wrong: ElementSpec[] = [];
    for (const e of f.elements) {
      const k = elementKey(e);
      if (!obs.elements.has(k)) missing.push(e);
      else if (obs.elements.get(k) !== elementData(e)) wrong.push(e);
    }
    if (obs.table) {
      for (const e of missing.slice(0, 5)) reasons.push(`element ${e.key} missing from ${e.map}`);
      if (missing.length > 5) reasons.push(`and ${missing.length - 5} more elements missing`);
    }
    for (const e of wrong) {
      reasons.push(
        `element ${e.key} in ${e.map} maps to ${obs.elements.get(elementKey(e)) ?? 'nothing'}, expected ${elementData(e) ?? 'nothing'}`,
      );
    }
    script += renderRemoval(wrong, []);
    script += renderAddElements([...wrong, ...missing]);
    const applied: AppliedFirewall = {
      chains: f.chains.map((c) => c.name),
      elements: f.elements.filter((e) => !FORWARD_MAPS.has(e.map)),
      subnet: intent.subnet,
      ...(f.flowtables.length ? { flowtables: f.flowtables.map((t) => t.name) } : {}),
    };
    let undo = '';
    if (script !== '') {
      if (!obs.table) undo = renderDeleteTable();
      else {
        // Undo removes what this change added and puts back what it replaced or removed.
        const newElems = f.elements.filter((e) => !obs.elements.has(elementKey(e)));
        const newChains = f.chains.map((c) => c.name).filter((c) => !obs.chains.has(c));
        const newFts = f.flowtables.map((t) => t.name).filter((t) => !obs.flowtables?.has(t));
        // (A removed element that jumps to a chain removed with it cannot come back without it.)
        const restorable = staleElems.filter((e) => e.jump === undefined || !staleChains.includes(e.jump));
        const restore = [...wrong, ...restorable].map((e) => asObserved(e, obs));
        undo = renderRemoval([...newElems, ...wrong], newChains, newFts) + renderAddElements(restore);
      }
    }
    // Planned from the records (fromRecords), the reasons above would be claims nothing looked at.
    if (obs.fromRecords && script !== '')
      reasons.splice(
        0,
        reasons.length,
        "add the network's chains and elements to table inet kvmnet (as the running networks' records have it, not listed)",
      );
    return { script, reasons, undo, applied };
  }

  planRemove(applied: AppliedFirewall, obs: FirewallObserved, othersRemain: boolean): FirewallChange {
    const none: AppliedFirewall = { chains: [], elements: [] };
    if (!obs.table) return { script: '', reasons: [], undo: '', applied: none };
    if (!othersRemain) {
      return {
        script: renderDeleteTable(),
        reasons: ['remove table inet kvmnet (no network uses it any more)'],
        undo: '',
        applied: none,
      };
    }
    const elems = [
      ...applied.elements.filter((e) => stillOurs(e, obs)),
      ...(applied.subnet === undefined ? [] : forwardElementsInto(applied.subnet, obs)),
    ];
    const chains = applied.chains.filter((c) => obs.chains.has(c));
    const fts = (applied.flowtables ?? []).filter((t) => obs.flowtables?.has(t));
    const reasons = [
      ...elems.map((e) => `remove element ${e.key} from ${e.map}`),
      ...chains.map((c) => `remove chain ${c}`),
      ...fts.map((t) => `remove flowtable ${t}`),
    ];
    return { script: renderRemoval(elems, chains, fts), reasons, undo: '', applied: none };
  }

  renderRecordedRemoval(applied: AppliedFirewall, intent: FirewallIntent, othersRemain: boolean): string {
    if (!othersRemain) return renderDeleteTable();
    // The record leaves out forward elements: the stored forwards give them (as the intent renders).
    const listed = new Set(applied.elements.map(elementKey));
    const forwards = buildFragment(withoutOffload(intent, false)).elements.filter(
      (e) => FORWARD_MAPS.has(e.map) && !listed.has(elementKey(e)),
    );
    return renderRemoval([...applied.elements, ...forwards], applied.chains, applied.flowtables ?? []);
  }

  async apply(script: string): Promise<void> {
    await this.host.nftApply(script);
  }

  renderForwardDelta(add: ElementSpec[], remove: ElementSpec[]): string {
    return renderRemoval(remove, []) + renderAddElements(add);
  }

  async applyForwardDelta(add: ElementSpec[], remove: ElementSpec[]): Promise<void> {
    await this.host.nftApply(this.renderForwardDelta(add, remove));
  }
}

/** The plan of a network that contributes nothing to the table: drop its leftovers, if any. */
function planNothing(
  intent: FirewallIntent,
  previous: AppliedFirewall | undefined,
  obs: FirewallObserved,
): FirewallChange {
  const applied: AppliedFirewall = { chains: [], elements: [], subnet: intent.subnet };
  if (!obs.table) return { script: '', reasons: [], undo: '', applied };
  const elems = [
    ...(previous?.elements ?? []).filter((e) => stillOurs(e, obs)),
    ...forwardElementsInto(intent.subnet, obs),
  ];
  const chains = (previous?.chains ?? []).filter((c) => obs.chains.has(c));
  const fts = (previous?.flowtables ?? []).filter((t) => obs.flowtables?.has(t));
  const reasons = [
    ...elems.map((e) => `element ${e.key} in ${e.map} is no longer wanted`),
    ...chains.map((c) => `chain ${c} is no longer wanted`),
    ...fts.map((t) => `flowtable ${t} is no longer wanted`),
  ];
  const restorable = elems.filter((e) => e.jump === undefined || !chains.includes(e.jump));
  const script = renderRemoval(elems, chains, fts);
  return { script, reasons, undo: script === '' ? '' : renderAddElements(restorable), applied };
}

/** The element is present and still maps to what this network applied. */
function stillOurs(e: ElementSpec, obs: FirewallObserved): boolean {
  const k = elementKey(e);
  return obs.elements.has(k) && obs.elements.get(k) === elementData(e);
}

/** The element with the data the kernel holds now (to put it back on rollback). */
function asObserved(e: ElementSpec, obs: FirewallObserved): ElementSpec {
  const data = obs.elements.get(elementKey(e));
  const out: ElementSpec = { map: e.map, key: e.key };
  if (e.jump !== undefined && data !== undefined) out.jump = data;
  else if (e.value !== undefined && data !== undefined) out.value = data;
  return out;
}

const FORWARD_MAPS = new Set(['fwd_any', 'fwd_addr']);

/** Observed forward elements whose target address lies in `subnet`. */
function forwardElementsInto(subnet: string, obs: FirewallObserved): ElementSpec[] {
  const c = parseCidr(subnet);
  if (!c) return [];
  const out: ElementSpec[] = [];
  for (const [k, data] of obs.elements) {
    const bar = k.indexOf('|');
    const map = k.slice(0, bar);
    if (!FORWARD_MAPS.has(map) || data === undefined) continue;
    const ip = parseIpv4(data.split(' . ')[0] ?? '');
    if (ip !== undefined && contains(c, ip)) out.push({ map, key: k.slice(bar + 1), value: data });
  }
  return out;
}
