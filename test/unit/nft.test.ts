// The nftables backend's reading of `nft -j list table inet kvmnet` and its planning against it
// (src/firewall/nftables.ts). The fixture is real nft output: the listing of the table after
// `nft -f` of renderSkeleton() plus the fragments of two networks, "lab" (NAT, DHCP, two port
// forwards) and "quiet" (isolated, no DHCP). `UPDATE_GOLDEN=1` regenerates it in a throwaway
// network namespace.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { driverFor } from '../../src/drivers/registry.js';
import { compareNft, desiredNft } from '../../src/engine/drift.js';
import { NftablesBackend, parseNftJson } from '../../src/firewall/nftables.js';
import { elementKey, type AppliedFirewall, type FirewallObserved } from '../../src/firewall/backend.js';
import type { Host } from '../../src/host/host.js';
import type { DnatEntry } from '../../src/model/forward.js';
import { buildNetwork, type NetworkDef } from '../../src/model/network.js';
import {
  buildFragment,
  renderAddElements,
  renderChains,
  renderFragment,
  renderSkeleton,
  skeletonTag,
  type FirewallIntent,
  withoutOffload,
} from '../../src/render/nft.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = join(REPO, 'test/unit/fixtures');
const FIXTURE_JSON = join(FIXTURES, 'nft-list-table.json');
const FIXTURE_SCRIPT = join(FIXTURES, 'nft-list-table.nft');

const LAB: NetworkDef = buildNetwork(
  { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7' },
  { others: [] },
);
const QUIET: NetworkDef = buildNetwork(
  { name: 'quiet', mode: 'isolated', subnet: '10.20.0.0/24', bridge: 'virbr8', dhcp: null },
  { others: [LAB] },
);
/** Port forwards of "lab": one on every host address, one bound to a host address. */
const LAB_DNAT: DnatEntry[] = [
  { proto: 'tcp', port: 8080, targetIp: '10.10.0.50', targetPort: 80 },
  { hostIp: '192.168.100.239', proto: 'udp', port: 5353, targetIp: '10.10.0.60', targetPort: 53 },
];
// The fixture is a listing from a kernel without nftables flowtables: intents as applied there,
// without flow offload (the offload tests below use the driver's intent as it is).
const intentOf = (d: NetworkDef, dnat: DnatEntry[] = [], peers: string[] = []): FirewallIntent =>
  withoutOffload(driverFor(d.mode).firewall(d, dnat, peers), false);
const LAB_INTENT = intentOf(LAB, LAB_DNAT);
const QUIET_INTENT = intentOf(QUIET);
const LAB_TAG = `lab#${buildFragment(LAB_INTENT).tag}`;
const QUIET_TAG = `quiet#${buildFragment(QUIET_INTENT).tag}`;
const SKEL_TAG = `kvmnet#${skeletonTag()}`;

const backend = new NftablesBackend({} as Host, () => Promise.resolve(false)); // planNetwork/planRemove never call the host

function fullScript(): string {
  return (
    renderSkeleton() + renderFragment(buildFragment(LAB_INTENT)) + renderFragment(buildFragment(QUIET_INTENT))
  );
}

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: input ?? '' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Runs fn inside a fresh network namespace that is deleted afterwards, whatever happens. */
function inNamespace<T>(name: string, fn: (ns: string) => T): T {
  sh('ip', ['netns', 'add', name]);
  try {
    return fn(name);
  } finally {
    sh('ip', ['netns', 'del', name]);
  }
}

type Item = Record<string, Record<string, unknown>>;
interface NftJson {
  nftables: Item[];
}

let fixture: NftJson;

before(() => {
  if (process.env.UPDATE_GOLDEN === '1') {
    const script = fullScript();
    const json = inNamespace(`ut-${process.pid}-fix`, (ns) => {
      sh('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], script);
      return sh('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'kvmnet']);
    });
    mkdirSync(FIXTURES, { recursive: true });
    writeFileSync(FIXTURE_SCRIPT, script);
    writeFileSync(FIXTURE_JSON, JSON.stringify(JSON.parse(json), null, 2) + '\n');
  }
  fixture = JSON.parse(readFileSync(FIXTURE_JSON, 'utf8')) as NftJson;
});

/** A deep copy of the fixture with some items removed or changed. */
function edited(edit: (items: Item[]) => Item[]): NftJson {
  const copy = structuredClone(fixture);
  return { nftables: edit(copy.nftables) };
}

function rulesOf(items: Item[], chain: string): Item[] {
  return items.filter((it) => it.rule?.chain === chain);
}

function observe(json: unknown): FirewallObserved {
  return parseNftJson(json);
}

/** What the backend records for a network: its chains and own elements; forwards are found by subnet. */
function appliedOf(intent: FirewallIntent): AppliedFirewall {
  const f = buildFragment(intent);
  return {
    chains: f.chains.map((c) => c.name),
    elements: f.elements.filter((e) => e.map !== 'fwd_any' && e.map !== 'fwd_addr'),
    subnet: intent.subnet,
  };
}

describe('base chain declarations', () => {
  test('a base chain with another policy or hook is drift, and repair re-creates it', () => {
    const json = edited((items) =>
      items.map((it) =>
        it.chain && it.chain.name === 'forward' ? { chain: { ...it.chain, policy: 'drop' } } : it,
      ),
    );
    const obs = observe(json);
    assert.equal(obs.skeletonOk, false);
    assert.deepEqual(obs.badBaseChains, ['forward']);
    const change = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), obs);
    assert.ok(
      change.reasons.includes('base chain forward has another type, hook, priority or policy'),
      change.reasons.join('; '),
    );
    assert.match(
      change.script,
      /^flush chain inet kvmnet forward\ndelete chain inet kvmnet forward\nadd table inet kvmnet\n/,
    );
    const prio = observe(
      edited((items) =>
        items.map((it) =>
          it.chain && it.chain.name === 'input' ? { chain: { ...it.chain, prio: 10 } } : it,
        ),
      ),
    );
    assert.deepEqual(prio.badBaseChains, ['input']);
    const output = observe(
      edited((items) =>
        items.map((it) =>
          it.chain && it.chain.name === 'output' ? { chain: { ...it.chain, prio: 0 } } : it,
        ),
      ),
    );
    assert.deepEqual(output.badBaseChains, ['output']);
    const prerouting = observe(
      edited((items) =>
        items.map((it) =>
          it.chain && it.chain.name === 'prerouting' ? { chain: { ...it.chain, type: 'filter' } } : it,
        ),
      ),
    );
    assert.deepEqual(prerouting.badBaseChains, ['prerouting']);
  });

  test('dnat_fwd is a regular chain: its declaration is not checked', () => {
    const obs = observe(
      edited((items) =>
        items.map((it) =>
          it.chain && it.chain.name === 'dnat_fwd'
            ? { chain: { ...it.chain, type: 'nat', hook: 'prerouting', prio: -100, policy: 'accept' } }
            : it,
        ),
      ),
    );
    assert.deepEqual(obs.badBaseChains, []);
    assert.equal(obs.skeletonOk, true);
  });
});

describe('the fixture', () => {
  test('was generated from what src/render/nft.ts renders now', () => {
    assert.equal(
      readFileSync(FIXTURE_SCRIPT, 'utf8'),
      fullScript(),
      'the rendered rules changed: regenerate the fixture with `UPDATE_GOLDEN=1 node --test dist/test/unit/nft.test.js` and review the diff',
    );
  });
});

describe('parseNftJson', () => {
  test('null (no table) observes nothing', () => {
    assert.deepEqual(parseNftJson(null), {
      table: false,
      skeletonOk: false,
      badBaseChains: [],
      retiredChains: [],
      chains: new Map(),
      elements: new Map(),
    });
  });

  test('an empty table exists but has no skeleton', () => {
    const obs = observe({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'kvmnet', handle: 1 } },
      ],
    });
    assert.equal(obs.table, true);
    assert.equal(obs.skeletonOk, false);
    assert.equal(obs.chains.size, 0);
    assert.equal(obs.elements.size, 0);
  });

  test('the listing: skeleton ok, every chain with its rule comments in order', () => {
    const obs = observe(fixture);
    assert.equal(obs.table, true);
    assert.equal(obs.skeletonOk, true);
    assert.deepEqual(
      obs.chains,
      new Map<string, Array<string | undefined>>([
        ['dnat_fwd', [SKEL_TAG, SKEL_TAG]],
        ['between', [SKEL_TAG, SKEL_TAG, SKEL_TAG]],
        ['forward', [SKEL_TAG, SKEL_TAG]],
        ['input', [SKEL_TAG]],
        ['postrouting', [SKEL_TAG, SKEL_TAG]],
        ['prerouting', [SKEL_TAG]],
        ['output', [SKEL_TAG]],
        ['mangle_output', [SKEL_TAG]],
        ['net_lab_in', [LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG]],
        ['net_lab_out', [LAB_TAG, LAB_TAG]],
        ['net_lab_host', [LAB_TAG, LAB_TAG]],
        ['net_lab_hairpin', [LAB_TAG]],
        ['net_lab_nat', [LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG]],
        ['net_quiet_in', [QUIET_TAG, QUIET_TAG, QUIET_TAG]],
        ['net_quiet_out', [QUIET_TAG]],
        ['net_quiet_host', [QUIET_TAG, QUIET_TAG]],
      ]),
    );
  });

  test('the listing: map elements with their jump targets or data, set elements without', () => {
    const obs = observe(fixture);
    assert.deepEqual(
      obs.elements,
      new Map<string, string | undefined>([
        ['fwd_in|virbr7', 'net_lab_in'],
        ['fwd_in|virbr8', 'net_quiet_in'],
        ['fwd_out|virbr7', 'net_lab_out'],
        ['fwd_out|virbr8', 'net_quiet_out'],
        ['host_in|virbr7', 'net_lab_host'],
        ['host_in|virbr8', 'net_quiet_host'],
        ['nat_out|virbr7', 'net_lab_nat'],
        ['hairpin|virbr7', 'net_lab_hairpin'],
        ['fwd_addr|192.168.100.239 . udp . 5353', '10.10.0.60 . 53'],
        ['fwd_any|tcp . 8080', '10.10.0.50 . 80'],
        ['dhcp_bridges|virbr7', undefined],
        ['gateways|10.10.0.1', undefined],
        ['gateways|10.20.0.1', undefined],
        ['net_bridges|virbr7', undefined],
        ['net_bridges|virbr8', undefined],
        ['net_peers|virbr7 . virbr7', undefined],
        ['net_peers|virbr8 . virbr8', undefined],
      ]),
    );
  });

  test('the listing: concatenated keys and data of the forward maps read as "a . b . c"', () => {
    // nft lists them as {"concat": [...]} with ports as numbers; the key text must equal what
    // buildFragment renders, or every forward would look missing on each plan.
    const elemOf = (name: string): unknown => fixture.nftables.find((it) => it.map?.name === name)?.map?.elem;
    assert.deepEqual(elemOf('fwd_any'), [[{ concat: ['tcp', 8080] }, { concat: ['10.10.0.50', 80] }]]);
    assert.deepEqual(elemOf('fwd_addr'), [
      [{ concat: ['192.168.100.239', 'udp', 5353] }, { concat: ['10.10.0.60', 53] }],
    ]);
    const obs = observe(fixture);
    for (const e of buildFragment(LAB_INTENT).elements.filter((x) => x.value !== undefined)) {
      assert.equal(obs.elements.get(`${e.map}|${e.key}`), e.value, `${e.map} ${e.key}`);
    }
  });

  test('a rule without a comment is observed as undefined', () => {
    const obs = observe(
      edited((items) => {
        const r = rulesOf(items, 'net_lab_out')[0];
        if (r?.rule) delete r.rule.comment;
        return items;
      }),
    );
    assert.deepEqual(obs.chains.get('net_lab_out'), [undefined, LAB_TAG]);
  });

  test('skeleton not ok: a base rule missing, an extra rule, a foreign comment, a base map or set missing', () => {
    const cases: Array<[string, (items: Item[]) => Item[]]> = [
      ['forward rule missing', (items) => items.filter((it) => it !== rulesOf(items, 'forward')[1])],
      [
        'extra rule in input',
        (items) => [
          ...items,
          { rule: { family: 'inet', table: 'kvmnet', chain: 'input', handle: 999, expr: [] } },
        ],
      ],
      [
        'postrouting rule with an old tag',
        (items) => {
          const r = rulesOf(items, 'postrouting')[0];
          if (r?.rule) r.rule.comment = 'kvmnet#000000000000';
          return items;
        },
      ],
      [
        'base chain missing',
        (items) =>
          items.filter((it) => it.chain?.name !== 'mangle_output' && it.rule?.chain !== 'mangle_output'),
      ],
      ['dnat_fwd rule missing', (items) => items.filter((it) => it !== rulesOf(items, 'dnat_fwd')[0])],
      [
        'output chain missing',
        (items) => items.filter((it) => it.chain?.name !== 'output' && it.rule?.chain !== 'output'),
      ],
      ['map nat_out missing', (items) => items.filter((it) => it.map?.name !== 'nat_out')],
      ['map fwd_addr missing', (items) => items.filter((it) => it.map?.name !== 'fwd_addr')],
      ['map fwd_any missing', (items) => items.filter((it) => it.map?.name !== 'fwd_any')],
      ['set dhcp_bridges missing', (items) => items.filter((it) => it.set?.name !== 'dhcp_bridges')],
      ['set gateways missing', (items) => items.filter((it) => it.set?.name !== 'gateways')],
      ['set net_peers missing', (items) => items.filter((it) => it.set?.name !== 'net_peers')],
      ['between rule missing', (items) => items.filter((it) => it !== rulesOf(items, 'between')[2])],
    ];
    for (const [what, edit] of cases) {
      const obs = observe(edited(edit));
      assert.equal(obs.table, true, what);
      assert.equal(obs.skeletonOk, false, what);
    }
  });
});

describe('NftablesBackend.planNetwork', () => {
  test('on the listing of exactly what it renders: nothing to do', () => {
    const obs = observe(fixture);
    for (const intent of [LAB_INTENT, QUIET_INTENT]) {
      for (const previous of [undefined, appliedOf(intent)]) {
        const ch = backend.planNetwork(intent, previous, obs);
        assert.equal(ch.script, '', `${intent.network}: ${ch.reasons.join('; ')}`);
        assert.deepEqual(ch.reasons, []);
        assert.equal(ch.undo, '');
        assert.deepEqual(ch.applied, appliedOf(intent));
      }
    }
  });

  test('applied names every chain and own element of the network; forwards are found by its subnet', () => {
    assert.deepEqual(backend.planNetwork(LAB_INTENT, undefined, parseNftJson(null)).applied, {
      chains: ['net_lab_in', 'net_lab_out', 'net_lab_host', 'net_lab_hairpin', 'net_lab_nat'],
      elements: [
        { map: 'net_bridges', key: 'virbr7' },
        { map: 'net_peers', key: 'virbr7 . virbr7' },
        { map: 'fwd_in', key: 'virbr7', jump: 'net_lab_in' },
        { map: 'fwd_out', key: 'virbr7', jump: 'net_lab_out' },
        { map: 'host_in', key: 'virbr7', jump: 'net_lab_host' },
        { map: 'hairpin', key: 'virbr7', jump: 'net_lab_hairpin' },
        { map: 'nat_out', key: 'virbr7', jump: 'net_lab_nat' },
        { map: 'gateways', key: '10.10.0.1' },
        { map: 'dhcp_bridges', key: 'virbr7' },
      ],
      subnet: '10.10.0.0/24',
    });
    assert.deepEqual(backend.planNetwork(QUIET_INTENT, undefined, parseNftJson(null)).applied, {
      chains: ['net_quiet_in', 'net_quiet_out', 'net_quiet_host'],
      elements: [
        { map: 'net_bridges', key: 'virbr8' },
        { map: 'net_peers', key: 'virbr8 . virbr8' },
        { map: 'fwd_in', key: 'virbr8', jump: 'net_quiet_in' },
        { map: 'fwd_out', key: 'virbr8', jump: 'net_quiet_out' },
        { map: 'host_in', key: 'virbr8', jump: 'net_quiet_host' },
        { map: 'gateways', key: '10.20.0.1' },
      ],
      subnet: '10.20.0.0/24',
    });
  });

  test("one rule removed from a chain: rewrite that network's chains only, naming the chain; the other network is untouched", () => {
    const obs = observe(
      edited((items) => {
        const gone = rulesOf(items, 'net_lab_in')[2];
        return items.filter((it) => it !== gone);
      }),
    );
    assert.equal(obs.skeletonOk, true);
    const ch = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), obs);
    assert.deepEqual(ch.reasons, ['chain net_lab_in has 4 rules not matching the 5 expected']);
    assert.equal(ch.script, renderChains(buildFragment(LAB_INTENT)));
    assert.match(ch.script, /^add chain inet kvmnet net_lab_in\nflush chain inet kvmnet net_lab_in\n/);
    assert.doesNotMatch(ch.script, /element/); // the elements are intact: not re-added
    assert.equal(ch.undo, ''); // every chain and element existed before: nothing new to take away
    assert.equal(backend.planNetwork(QUIET_INTENT, appliedOf(QUIET_INTENT), obs).script, '');
  });

  test('a rule with a foreign comment counts as a mismatch', () => {
    const obs = observe(
      edited((items) => {
        const r = rulesOf(items, 'net_quiet_host')[1];
        if (r?.rule) r.rule.comment = 'quiet#000000000000';
        return items;
      }),
    );
    const ch = backend.planNetwork(QUIET_INTENT, undefined, obs);
    assert.deepEqual(ch.reasons, ['chain net_quiet_host has 2 rules not matching the 2 expected']);
    assert.equal(ch.script, renderChains(buildFragment(QUIET_INTENT)));
  });

  test('a missing chain and a missing element: reasons name them, undo removes only what is new', () => {
    const obs = observe(
      edited((items) =>
        items
          .filter((it) => it.chain?.name !== 'net_lab_nat' && it.rule?.chain !== 'net_lab_nat')
          .map((it) => {
            if (it.map?.name === 'nat_out') it.map.elem = [];
            return it;
          }),
      ),
    );
    const ch = backend.planNetwork(LAB_INTENT, undefined, obs);
    assert.deepEqual(ch.reasons, ['chain net_lab_nat is missing', 'element virbr7 missing from nat_out']);
    assert.equal(
      ch.script,
      renderChains(buildFragment(LAB_INTENT)) +
        'add element inet kvmnet nat_out { "virbr7" : jump net_lab_nat }\n',
    );
    assert.equal(
      ch.undo,
      'delete element inet kvmnet nat_out { "virbr7" }\nflush chain inet kvmnet net_lab_nat\ndelete chain inet kvmnet net_lab_nat\n',
    );
  });

  test('an element jumping to the wrong chain is deleted first, then re-added; nothing else', () => {
    const obs = observe(
      edited((items) =>
        items.map((it) => {
          if (it.map?.name === 'fwd_in')
            it.map.elem = [
              ['virbr7', { jump: { target: 'net_quiet_in' } }],
              ['virbr8', { jump: { target: 'net_quiet_in' } }],
            ];
          return it;
        }),
      ),
    );
    const ch = backend.planNetwork(LAB_INTENT, undefined, obs);
    assert.deepEqual(ch.reasons, ['element virbr7 in fwd_in maps to net_quiet_in, expected net_lab_in']);
    assert.equal(
      ch.script,
      'delete element inet kvmnet fwd_in { "virbr7" }\n' +
        'add element inet kvmnet fwd_in { "virbr7" : jump net_lab_in }\n',
    );
  });

  test('no table: skeleton plus fragment, undo deletes the table', () => {
    const ch = backend.planNetwork(LAB_INTENT, undefined, parseNftJson(null));
    assert.deepEqual(ch.reasons, ['table inet kvmnet is missing']);
    assert.equal(ch.script, renderSkeleton() + renderFragment(buildFragment(LAB_INTENT)));
    assert.equal(ch.undo, 'delete table inet kvmnet\n');
  });

  test('skeleton drifted: skeleton is rewritten, the intact network is not', () => {
    const obs = observe(edited((items) => items.filter((it) => it !== rulesOf(items, 'forward')[0])));
    const ch = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), obs);
    assert.deepEqual(ch.reasons, ["base chains of table inet kvmnet differ from kvmnet's"]);
    assert.equal(ch.script, renderSkeleton());
  });

  test('a table of an earlier kvmnet (filter chain mangle_postrouting): the skeleton is rewritten and the retired chain deleted', () => {
    const old = observe(
      edited((items) => [
        ...items,
        {
          chain: {
            family: 'inet',
            table: 'kvmnet',
            name: 'mangle_postrouting',
            handle: 990,
            type: 'filter',
            hook: 'postrouting',
            prio: -150,
            policy: 'accept',
          },
        },
        {
          rule: {
            family: 'inet',
            table: 'kvmnet',
            chain: 'mangle_postrouting',
            handle: 991,
            expr: [],
            comment: 'kvmnet#62ef9b904c60',
          },
        },
      ]),
    );
    assert.equal(old.skeletonOk, false);
    const ch = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), old);
    assert.deepEqual(ch.reasons, [
      "base chains of table inet kvmnet differ from kvmnet's",
      'base chain mangle_postrouting of an earlier kvmnet is no longer wanted',
    ]);
    assert.equal(
      ch.script,
      'flush chain inet kvmnet mangle_postrouting\ndelete chain inet kvmnet mangle_postrouting\n' +
        renderSkeleton(),
    );
    // Drift names it too, so `kvmnet check` finds it and `repair` removes it.
    const findings = compareNft('lab', desiredNft(LAB_INTENT), old);
    assert.deepEqual(
      findings.map((f) => [f.object, f.actual]),
      [['chain inet kvmnet mangle_postrouting', 'present']],
    );
  });

  test('switching lab from NAT to routed drops the NAT chain and its element, keeps the hairpin', () => {
    const routed = intentOf({ ...LAB, mode: 'routed' }, LAB_DNAT);
    assert.deepEqual(buildFragment(routed).chains.at(-1), {
      name: 'net_lab_hairpin',
      rules: ['ip saddr 10.10.0.0/24 ip daddr 10.10.0.0/24 ct status dnat masquerade'],
    });
    const ch = backend.planNetwork(routed, appliedOf(LAB_INTENT), observe(fixture));
    assert.deepEqual(ch.reasons, [
      'element virbr7 in nat_out is no longer wanted',
      'chain net_lab_nat is no longer wanted',
      'chain net_lab_in has 5 rules not matching the 4 expected',
      'chain net_lab_out has 2 rules not matching the 2 expected',
      'chain net_lab_host has 2 rules not matching the 2 expected',
      'chain net_lab_hairpin has 1 rules not matching the 1 expected',
    ]);
    assert.equal(
      ch.script,
      'delete element inet kvmnet nat_out { "virbr7" }\n' +
        'flush chain inet kvmnet net_lab_nat\n' +
        'delete chain inet kvmnet net_lab_nat\n' +
        renderChains(buildFragment(routed)),
    );
    // The NAT element jumped to the chain this change removes: the undo cannot bring it back alone.
    assert.equal(ch.undo, '');
    assert.deepEqual(ch.applied, appliedOf(routed));
    assert.deepEqual(ch.applied.chains, ['net_lab_in', 'net_lab_out', 'net_lab_host', 'net_lab_hairpin']);
  });

  test('switching lab from NAT to isolated removes the NAT and hairpin chains and the elements it no longer needs', () => {
    const isolated = intentOf({ ...LAB, mode: 'isolated' });
    const ch = backend.planNetwork(isolated, appliedOf(LAB_INTENT), observe(fixture));
    assert.deepEqual(ch.reasons, [
      'element virbr7 in hairpin is no longer wanted',
      'element virbr7 in nat_out is no longer wanted',
      'element 192.168.100.239 . udp . 5353 in fwd_addr is no longer wanted',
      'element tcp . 8080 in fwd_any is no longer wanted',
      'chain net_lab_hairpin is no longer wanted',
      'chain net_lab_nat is no longer wanted',
      'chain net_lab_in has 5 rules not matching the 3 expected',
      'chain net_lab_out has 2 rules not matching the 1 expected',
      'chain net_lab_host has 2 rules not matching the 2 expected',
    ]);
    assert.equal(
      ch.script,
      'delete element inet kvmnet hairpin { "virbr7" }\n' +
        'delete element inet kvmnet nat_out { "virbr7" }\n' +
        'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }\n' +
        'delete element inet kvmnet fwd_any { tcp . 8080 }\n' +
        'flush chain inet kvmnet net_lab_hairpin\n' +
        'delete chain inet kvmnet net_lab_hairpin\n' +
        'flush chain inet kvmnet net_lab_nat\n' +
        'delete chain inet kvmnet net_lab_nat\n' +
        renderChains(buildFragment(isolated)),
    );
    // The removed forwards come back on rollback; the chains' elements cannot.
    assert.equal(
      ch.undo,
      'add element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 : 10.10.0.60 . 53 }\n' +
        'add element inet kvmnet fwd_any { tcp . 8080 : 10.10.0.50 . 80 }\n',
    );
    assert.deepEqual(ch.applied.chains, ['net_lab_in', 'net_lab_out', 'net_lab_host']);
  });

  test('forwardDev: out and masquerade only through that interface, replies only from it', () => {
    const dev = buildFragment(intentOf({ ...LAB, forwardDev: 'eth1' }));
    const rules = (c: string): string[] => dev.chains.find((x) => x.name === c)?.rules ?? [];
    assert.deepEqual(rules('net_lab_out'), ['ip saddr 10.10.0.0/24 oifname "eth1" accept', 'reject']);
    assert.deepEqual(rules('net_lab_in'), [
      'iifname "virbr7" accept',
      'iifname @net_bridges jump between',
      'iifname "eth1" ip daddr 10.10.0.0/24 ct state established,related accept',
      'ip daddr 10.10.0.0/24 ct status dnat accept',
      'reject',
    ]);
    assert.deepEqual(rules('net_lab_nat').slice(3), [
      'ip saddr 10.10.0.0/24 oifname "eth1" meta l4proto { tcp, udp } masquerade to :1024-65535',
      'ip saddr 10.10.0.0/24 oifname "eth1" masquerade',
    ]);
    assert.notEqual(dev.tag, buildFragment(intentOf(LAB)).tag);
    assert.deepEqual(dev.elements, buildFragment(intentOf(LAB)).elements);
    const routed = buildFragment(intentOf({ ...LAB, mode: 'routed', forwardDev: 'eth1' }));
    assert.deepEqual(routed.chains.find((x) => x.name === 'net_lab_in')?.rules, [
      'iifname "virbr7" accept',
      'iifname @net_bridges jump between',
      'iifname "eth1" ip daddr 10.10.0.0/24 accept',
      'reject',
    ]);
    // A drifted listing (lab rendered without dev) is rewritten: the tag differs.
    const ch = backend.planNetwork(
      intentOf({ ...LAB, forwardDev: 'eth1' }, LAB_DNAT),
      appliedOf(LAB_INTENT),
      observe(fixture),
    );
    assert.match(ch.script, /oifname "eth1" accept comment/);
  });

  test('mode open contributes nothing: no table of its own, no skeleton; leftovers of an earlier mode are removed', () => {
    const open = intentOf({ ...LAB, mode: 'open' });
    assert.deepEqual(buildFragment(open).chains, []);
    assert.deepEqual(buildFragment(open).elements, []);
    const fresh = backend.planNetwork(open, undefined, parseNftJson(null));
    assert.deepEqual(fresh, {
      script: '',
      reasons: [],
      undo: '',
      applied: { chains: [], elements: [], subnet: '10.10.0.0/24' },
    });
    // Another network's table is there: an open network touches nothing of it.
    assert.equal(backend.planNetwork(open, fresh.applied, observe(fixture)).script.includes('quiet'), false);
    const onTable = backend.planNetwork(
      open,
      undefined,
      observe(
        edited((items) => items.filter((it) => !it.rule || !String(it.rule.chain).startsWith('net_lab'))),
      ),
    );
    assert.equal(
      onTable.reasons.some((r) => r.includes('skeleton') || r.includes('base chains')),
      false,
    );
    // Switched from nat while running: everything lab had goes, forwards into its subnet too.
    const sw = backend.planNetwork(open, appliedOf(LAB_INTENT), observe(fixture));
    for (const c of ['net_lab_in', 'net_lab_out', 'net_lab_host', 'net_lab_hairpin', 'net_lab_nat'])
      assert.match(sw.script, new RegExp(`delete chain inet kvmnet ${c}\n`));
    assert.match(sw.script, /delete element inet kvmnet gateways \{ 10\.10\.0\.1 \}/);
    assert.match(sw.script, /delete element inet kvmnet fwd_any \{ tcp \. 8080 \}/);
    assert.equal(sw.script.includes('quiet'), false);
    assert.equal(sw.script.includes('add '), false);
    assert.deepEqual(sw.applied, { chains: [], elements: [], subnet: '10.10.0.0/24' });
  });

  test('the tag covers the chains only: forwards change no rule comment', () => {
    assert.equal(buildFragment(LAB_INTENT).tag, buildFragment(intentOf(LAB)).tag);
    assert.notEqual(buildFragment(LAB_INTENT).tag, buildFragment(intentOf({ ...LAB, mode: 'routed' })).tag);
  });
});

describe('port forwards', () => {
  test('two forwards, one bound to a host address: a fwd_any and a fwd_addr element', () => {
    const f = buildFragment(LAB_INTENT);
    const forwards = f.elements.filter((e) => e.map === 'fwd_any' || e.map === 'fwd_addr');
    assert.deepEqual(forwards, [
      { map: 'fwd_any', key: 'tcp . 8080', value: '10.10.0.50 . 80' },
      { map: 'fwd_addr', key: '192.168.100.239 . udp . 5353', value: '10.10.0.60 . 53' },
    ]);
    assert.equal(
      renderAddElements(forwards),
      'add element inet kvmnet fwd_any { tcp . 8080 : 10.10.0.50 . 80 }\n' +
        'add element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 : 10.10.0.60 . 53 }\n',
    );
  });

  test('the network is in place but one forward element is missing: exactly one add element', () => {
    const cases: Array<[string, string, string, string]> = [
      [
        'fwd_any',
        'element tcp . 8080 missing from fwd_any',
        'add element inet kvmnet fwd_any { tcp . 8080 : 10.10.0.50 . 80 }\n',
        'delete element inet kvmnet fwd_any { tcp . 8080 }\n',
      ],
      [
        'fwd_addr',
        'element 192.168.100.239 . udp . 5353 missing from fwd_addr',
        'add element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 : 10.10.0.60 . 53 }\n',
        'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }\n',
      ],
    ];
    for (const [map, reason, script, undo] of cases) {
      const obs = observe(
        edited((items) =>
          items.map((it) => {
            if (it.map?.name === map) it.map.elem = [];
            return it;
          }),
        ),
      );
      assert.equal(obs.skeletonOk, true, map);
      for (const previous of [undefined, appliedOf(LAB_INTENT)]) {
        const ch = backend.planNetwork(LAB_INTENT, previous, obs);
        assert.deepEqual(ch.reasons, [reason], map);
        assert.equal(ch.script, script, map);
        assert.equal(ch.undo, undo, map);
        assert.deepEqual(ch.applied, appliedOf(LAB_INTENT), map);
      }
    }
  });

  test('many forwards missing: one add element each, the reasons name five and count the rest', () => {
    const extra: DnatEntry[] = Array.from({ length: 8 }, (_, i) => ({
      proto: 'tcp',
      port: 9000 + i,
      targetIp: '10.10.0.70',
      targetPort: 9000 + i,
    }));
    const ch = backend.planNetwork(
      intentOf(LAB, [...LAB_DNAT, ...extra]),
      appliedOf(LAB_INTENT),
      observe(fixture),
    );
    assert.deepEqual(ch.reasons, [
      'element tcp . 9000 missing from fwd_any',
      'element tcp . 9001 missing from fwd_any',
      'element tcp . 9002 missing from fwd_any',
      'element tcp . 9003 missing from fwd_any',
      'element tcp . 9004 missing from fwd_any',
      'and 3 more elements missing',
    ]);
    assert.equal(
      ch.script,
      extra
        .map((d) => `add element inet kvmnet fwd_any { tcp . ${d.port} : 10.10.0.70 . ${d.port} }\n`)
        .join(''),
    );
  });

  test('a forward whose target moved: its element is deleted, then re-added with the new value', () => {
    const moved = intentOf(LAB, [
      { proto: 'tcp', port: 8080, targetIp: '10.10.0.51', targetPort: 80 },
      { hostIp: '192.168.100.239', proto: 'udp', port: 5353, targetIp: '10.10.0.60', targetPort: 5353 },
    ]);
    const ch = backend.planNetwork(moved, appliedOf(LAB_INTENT), observe(fixture));
    assert.deepEqual(ch.reasons, [
      'element tcp . 8080 in fwd_any maps to 10.10.0.50 . 80, expected 10.10.0.51 . 80',
      'element 192.168.100.239 . udp . 5353 in fwd_addr maps to 10.10.0.60 . 53, expected 10.10.0.60 . 5353',
    ]);
    assert.equal(
      ch.script,
      'delete element inet kvmnet fwd_any { tcp . 8080 }\n' +
        'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }\n' +
        'add element inet kvmnet fwd_any { tcp . 8080 : 10.10.0.51 . 80 }\n' +
        'add element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 : 10.10.0.60 . 5353 }\n',
    );
    assert.deepEqual(ch.applied, appliedOf(moved));
  });

  test('a forward dropped since the previous apply: its element is deleted, only if still present', () => {
    const fewer = intentOf(LAB, LAB_DNAT.slice(0, 1));
    const ch = backend.planNetwork(fewer, appliedOf(LAB_INTENT), observe(fixture));
    assert.deepEqual(ch.reasons, ['element 192.168.100.239 . udp . 5353 in fwd_addr is no longer wanted']);
    assert.equal(ch.script, 'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }\n');
    assert.deepEqual(ch.applied, appliedOf(fewer));

    // Already gone from the kernel: nothing to delete.
    const gone = observe(
      edited((items) =>
        items.map((it) => {
          if (it.map?.name === 'fwd_addr') it.map.elem = [];
          return it;
        }),
      ),
    );
    const none = backend.planNetwork(fewer, appliedOf(LAB_INTENT), gone);
    assert.equal(none.script, '');
    assert.deepEqual(none.reasons, []);
    // Forwards into the network's subnet are its own, record or not (subnets never overlap).
    assert.equal(
      backend.planNetwork(fewer, undefined, observe(fixture)).script,
      'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }\n',
    );
  });
});

describe('NftablesBackend.planRemove', () => {
  test('last network: the whole table goes', () => {
    const ch = backend.planRemove(appliedOf(LAB_INTENT), observe(fixture), false);
    assert.equal(ch.script, 'delete table inet kvmnet\n');
    assert.deepEqual(ch.reasons, ['remove table inet kvmnet (no network uses it any more)']);
  });

  test('other networks remain: elements first, then chains, only those present', () => {
    const obs = observe(edited((items) => items.filter((it) => it.set?.name !== 'dhcp_bridges')));
    const ch = backend.planRemove(appliedOf(LAB_INTENT), obs, true);
    assert.equal(
      ch.script,
      [
        'delete element inet kvmnet net_bridges { "virbr7" }',
        'delete element inet kvmnet net_peers { "virbr7" . "virbr7" }',
        'delete element inet kvmnet fwd_in { "virbr7" }',
        'delete element inet kvmnet fwd_out { "virbr7" }',
        'delete element inet kvmnet host_in { "virbr7" }',
        'delete element inet kvmnet hairpin { "virbr7" }',
        'delete element inet kvmnet nat_out { "virbr7" }',
        'delete element inet kvmnet gateways { 10.10.0.1 }',
        'delete element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 }',
        'delete element inet kvmnet fwd_any { tcp . 8080 }',
        'flush chain inet kvmnet net_lab_in',
        'delete chain inet kvmnet net_lab_in',
        'flush chain inet kvmnet net_lab_out',
        'delete chain inet kvmnet net_lab_out',
        'flush chain inet kvmnet net_lab_host',
        'delete chain inet kvmnet net_lab_host',
        'flush chain inet kvmnet net_lab_hairpin',
        'delete chain inet kvmnet net_lab_hairpin',
        'flush chain inet kvmnet net_lab_nat',
        'delete chain inet kvmnet net_lab_nat',
        '',
      ].join('\n'),
    );
    assert.deepEqual(ch.reasons, [
      'remove element virbr7 from net_bridges',
      'remove element virbr7 . virbr7 from net_peers',
      'remove element virbr7 from fwd_in',
      'remove element virbr7 from fwd_out',
      'remove element virbr7 from host_in',
      'remove element virbr7 from hairpin',
      'remove element virbr7 from nat_out',
      'remove element 10.10.0.1 from gateways',
      'remove element 192.168.100.239 . udp . 5353 from fwd_addr',
      'remove element tcp . 8080 from fwd_any',
      'remove chain net_lab_in',
      'remove chain net_lab_out',
      'remove chain net_lab_host',
      'remove chain net_lab_hairpin',
      'remove chain net_lab_nat',
    ]);
  });

  test('no table: nothing to do', () => {
    const ch = backend.planRemove(appliedOf(LAB_INTENT), parseNftJson(null), true);
    assert.equal(ch.script, '');
    assert.deepEqual(ch.reasons, []);
  });
});

describe('against the kernel (throwaway namespace)', () => {
  const ns = `ut-${process.pid}-nft`;
  const nft = (args: string[], input?: string): string =>
    sh('ip', ['netns', 'exec', ns, 'nft', ...args], input);
  const list = (): FirewallObserved =>
    parseNftJson(JSON.parse(nft(['-j', 'list', 'table', 'inet', 'kvmnet'])));

  before(() => sh('ip', ['netns', 'add', ns]));
  after(() => sh('ip', ['netns', 'del', ns]));

  test('plan from nothing, apply, re-plan: empty; delete a rule: the repair converges; remove: clean', () => {
    const first = backend.planNetwork(LAB_INTENT, undefined, parseNftJson(null));
    nft(['-f', '-'], first.script);
    assert.equal(backend.planNetwork(LAB_INTENT, first.applied, list()).script, '');

    // Delete the third rule of net_lab_in by its handle, as an outsider would.
    const listed = JSON.parse(nft(['-j', 'list', 'chain', 'inet', 'kvmnet', 'net_lab_in'])) as NftJson;
    const handle = rulesOf(listed.nftables, 'net_lab_in')[2]?.rule?.handle;
    assert.equal(typeof handle, 'number');
    nft(['delete', 'rule', 'inet', 'kvmnet', 'net_lab_in', 'handle', String(handle)]);
    const repair = backend.planNetwork(LAB_INTENT, first.applied, list());
    assert.deepEqual(repair.reasons, ['chain net_lab_in has 4 rules not matching the 5 expected']);
    assert.equal(repair.script, renderChains(buildFragment(LAB_INTENT)));
    nft(['-f', '-'], repair.script);
    assert.equal(backend.planNetwork(LAB_INTENT, first.applied, list()).script, '');

    // A forward element deleted by an outsider: the repair adds just that element.
    nft(['delete', 'element', 'inet', 'kvmnet', 'fwd_addr', '{ 192.168.100.239 . udp . 5353 }']);
    const readd = backend.planNetwork(LAB_INTENT, first.applied, list());
    assert.deepEqual(readd.reasons, ['element 192.168.100.239 . udp . 5353 missing from fwd_addr']);
    assert.equal(
      readd.script,
      'add element inet kvmnet fwd_addr { 192.168.100.239 . udp . 5353 : 10.10.0.60 . 53 }\n',
    );
    nft(['-f', '-'], readd.script);
    assert.equal(backend.planNetwork(LAB_INTENT, first.applied, list()).script, '');

    // A forward's target moves: delete and re-add in one transaction, then nothing left to do.
    const moved = intentOf(LAB, [{ ...LAB_DNAT[0]!, targetIp: '10.10.0.51' }, LAB_DNAT[1]!]);
    const move = backend.planNetwork(moved, first.applied, list());
    assert.equal(
      move.script,
      'delete element inet kvmnet fwd_any { tcp . 8080 }\n' +
        'add element inet kvmnet fwd_any { tcp . 8080 : 10.10.0.51 . 80 }\n',
    );
    nft(['-f', '-'], move.script);
    assert.equal(list().elements.get('fwd_any|tcp . 8080'), '10.10.0.51 . 80');
    assert.equal(backend.planNetwork(moved, move.applied, list()).script, '');
    nft(['-f', '-'], backend.planNetwork(LAB_INTENT, move.applied, list()).script);
    assert.equal(backend.planNetwork(LAB_INTENT, first.applied, list()).script, '');

    // A second network beside it, then removing lab leaves quiet intact.
    nft(['-f', '-'], backend.planNetwork(QUIET_INTENT, undefined, list()).script);
    const rm = backend.planRemove(first.applied, list(), true);
    nft(['-f', '-'], rm.script);
    const left = list();
    assert.deepEqual(
      [...left.chains.keys()].filter((c) => c.startsWith('net_lab_')),
      [],
    );
    assert.deepEqual(
      first.applied.elements.map(elementKey).filter((k) => left.elements.has(k)),
      [],
    );
    assert.deepEqual(
      [...left.elements.keys()].filter((k) => k.endsWith('|virbr7')),
      [],
    );
    assert.equal(backend.planNetwork(QUIET_INTENT, appliedOf(QUIET_INTENT), left).script, '');
    assert.equal(left.skeletonOk, true);
  });

  test('upgrade: a table with the retired filter chain at postrouting converges in one plan', () => {
    nft(['-f', '-'], backend.planNetwork(LAB_INTENT, undefined, list()).script);
    nft(
      ['-f', '-'],
      'add chain inet kvmnet mangle_postrouting { type filter hook postrouting priority mangle; policy accept; }\n' +
        'add rule inet kvmnet mangle_postrouting oifname @dhcp_bridges udp dport 68 udp checksum set 0 comment "kvmnet#62ef9b904c60"\n',
    );
    const up = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), list());
    assert.match(
      up.script,
      /^flush chain inet kvmnet mangle_postrouting\ndelete chain inet kvmnet mangle_postrouting\n/,
    );
    nft(['-f', '-'], up.script);
    const now = list();
    assert.equal(now.chains.has('mangle_postrouting'), false);
    assert.equal(now.skeletonOk, true);
    assert.equal(backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), now).script, '');
  });
});

describe('isolation between networks', () => {
  const r1 = buildNetwork(
    { name: 'r1', mode: 'routed', subnet: '10.31.0.0/24', bridge: 'kvr1' },
    { others: [] },
  );
  const r2 = buildNetwork(
    { name: 'r2', mode: 'routed', subnet: '10.32.0.0/24', bridge: 'kvr2', peers: ['r1'] },
    { others: [r1] },
  );
  const peersOf = (f: ReturnType<typeof buildFragment>): string[] =>
    f.elements.filter((e) => e.map === 'net_peers').map((e) => e.key);

  test('every network with rules puts its bridge in net_bridges and pairs it with itself only', () => {
    for (const intent of [LAB_INTENT, QUIET_INTENT, intentOf(r1)]) {
      const f = buildFragment(intent);
      assert.deepEqual(
        f.elements.filter((e) => e.map === 'net_bridges').map((e) => e.key),
        [intent.bridge],
      );
      assert.deepEqual(peersOf(f), [`${intent.bridge} . ${intent.bridge}`]);
    }
  });

  test('a routed network with a routed peer pairs both bridges both ways', () => {
    const f = buildFragment(intentOf(r2, [], ['kvr1']));
    assert.deepEqual(peersOf(f), ['kvr2 . kvr2', 'kvr2 . kvr1', 'kvr1 . kvr2']);
    assert.match(renderFragment(f), /add element inet kvmnet net_peers \{ "kvr2" \. "kvr1" \}/);
    // The rules do not change with peers: only elements.
    assert.equal(f.tag, buildFragment(intentOf(r2)).tag);
  });

  test('peer bridges are ignored for modes other than routed', () => {
    const f = buildFragment(driverFor('nat').firewall(LAB, [], ['kvr1']));
    assert.deepEqual(peersOf(f), ['virbr7 . virbr7']);
  });

  test('kvmnet-to-kvmnet traffic goes to chain between (which drops by default) before any accept of the receiving network but its own bridge', () => {
    const skel = renderSkeleton();
    const fwd = skel.split('\n').filter((l) => l.startsWith('add rule inet kvmnet forward '));
    // Into a network first: every packet to a kvmnet bridge goes through that network's in chain.
    assert.match(fwd[0] ?? '', /forward oifname vmap @fwd_in comment/);
    const between = skel.split('\n').filter((l) => l.startsWith('add rule inet kvmnet between '));
    assert.match(between.at(-1) ?? '', /between drop comment/);
    for (const intent of [LAB_INTENT, QUIET_INTENT, intentOf(r1), intentOf({ ...LAB, forwardDev: 'eth1' })]) {
      const f = buildFragment(intent);
      const inRules = f.chains.find((c) => c.name === `net_${intent.network}_in`)?.rules ?? [];
      assert.deepEqual(
        inRules.slice(0, 2),
        [`iifname "${intent.bridge}" accept`, 'iifname @net_bridges jump between'],
        intent.network,
      );
      // Established and related packets too: no accept before the isolation check.
      assert.ok(inRules.slice(2).some((r) => /ct state established/.test(r)) || intent.forward !== 'nat');
    }
  });

  test("no base chain accepts established traffic before the networks' chains, and no filter chain hooks postrouting", () => {
    const skel = renderSkeleton();
    assert.doesNotMatch(skel, /add rule inet kvmnet (forward|input) [^\n]*ct state/);
    assert.doesNotMatch(skel, /type filter hook postrouting/);
    // DHCP checksums: only the host's own output, the port compared before the set lookup.
    assert.match(skel, /mangle_output udp dport 68 oifname @dhcp_bridges udp checksum set 0/);
  });
});
