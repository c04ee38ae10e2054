// The nftables backend's reading of `nft -j list table inet kvmnet` and its planning against it
// (src/firewall/nftables.ts). The fixture is real nft output: the listing of the table after
// `nft -f` of renderSkeleton() plus the fragments of two networks, "lab" (NAT, DHCP) and "quiet"
// (isolated, no DHCP). `UPDATE_GOLDEN=1` regenerates it in a throwaway network namespace.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { driverFor } from '../../src/drivers/registry.js';
import { NftablesBackend, parseNftJson } from '../../src/firewall/nftables.js';
import type { AppliedFirewall, FirewallObserved } from '../../src/firewall/backend.js';
import type { Host } from '../../src/host/host.js';
import { buildNetwork, type NetworkDef } from '../../src/model/network.js';
import {
  buildFragment,
  renderFragment,
  renderSkeleton,
  skeletonTag,
  type FirewallIntent,
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
const intentOf = (d: NetworkDef): FirewallIntent => driverFor(d.mode).firewall(d);
const LAB_INTENT = intentOf(LAB);
const QUIET_INTENT = intentOf(QUIET);
const LAB_TAG = `lab#${buildFragment(LAB_INTENT).tag}`;
const QUIET_TAG = `quiet#${buildFragment(QUIET_INTENT).tag}`;
const SKEL_TAG = `kvmnet#${skeletonTag()}`;

const backend = new NftablesBackend({} as Host); // planNetwork/planRemove never call the host

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

function appliedOf(intent: FirewallIntent): AppliedFirewall {
  const f = buildFragment(intent);
  return { chains: f.chains.map((c) => c.name), elements: f.elements };
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
        ['forward', [SKEL_TAG, SKEL_TAG]],
        ['input', [SKEL_TAG]],
        ['postrouting', [SKEL_TAG]],
        ['mangle_postrouting', [SKEL_TAG]],
        ['net_lab_in', [LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG]],
        ['net_lab_out', [LAB_TAG, LAB_TAG]],
        ['net_lab_host', [LAB_TAG, LAB_TAG]],
        ['net_lab_nat', [LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG, LAB_TAG]],
        ['net_quiet_in', [QUIET_TAG, QUIET_TAG]],
        ['net_quiet_out', [QUIET_TAG]],
        ['net_quiet_host', [QUIET_TAG, QUIET_TAG]],
      ]),
    );
  });

  test('the listing: map elements with their jump targets, set elements without', () => {
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
        ['dhcp_bridges|virbr7', undefined],
      ]),
    );
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
          items.filter(
            (it) => it.chain?.name !== 'mangle_postrouting' && it.rule?.chain !== 'mangle_postrouting',
          ),
      ],
      ['map nat_out missing', (items) => items.filter((it) => it.map?.name !== 'nat_out')],
      ['set dhcp_bridges missing', (items) => items.filter((it) => it.set?.name !== 'dhcp_bridges')],
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

  test('applied names every chain and element of the network', () => {
    assert.deepEqual(appliedOf(LAB_INTENT), {
      chains: ['net_lab_in', 'net_lab_out', 'net_lab_host', 'net_lab_nat'],
      elements: [
        { map: 'fwd_in', key: 'virbr7', jump: 'net_lab_in' },
        { map: 'fwd_out', key: 'virbr7', jump: 'net_lab_out' },
        { map: 'host_in', key: 'virbr7', jump: 'net_lab_host' },
        { map: 'nat_out', key: 'virbr7', jump: 'net_lab_nat' },
        { map: 'dhcp_bridges', key: 'virbr7' },
      ],
    });
    assert.deepEqual(appliedOf(QUIET_INTENT).chains, ['net_quiet_in', 'net_quiet_out', 'net_quiet_host']);
  });

  test('one rule removed from a chain: rewrite that network, naming the chain; the other network is untouched', () => {
    const obs = observe(
      edited((items) => {
        const gone = rulesOf(items, 'net_lab_in')[2];
        return items.filter((it) => it !== gone);
      }),
    );
    assert.equal(obs.skeletonOk, true);
    const ch = backend.planNetwork(LAB_INTENT, appliedOf(LAB_INTENT), obs);
    assert.deepEqual(ch.reasons, ['chain net_lab_in has 3 rules not matching the 4 expected']);
    assert.equal(ch.script, renderFragment(buildFragment(LAB_INTENT)));
    assert.match(ch.script, /^add chain inet kvmnet net_lab_in\nflush chain inet kvmnet net_lab_in\n/);
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
    assert.equal(ch.script, renderFragment(buildFragment(QUIET_INTENT)));
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
    assert.equal(ch.script, renderFragment(buildFragment(LAB_INTENT)));
    assert.equal(
      ch.undo,
      'delete element inet kvmnet nat_out { "virbr7" }\nflush chain inet kvmnet net_lab_nat\ndelete chain inet kvmnet net_lab_nat\n',
    );
  });

  test('an element jumping to the wrong chain is deleted first, then rewritten', () => {
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
    assert.deepEqual(ch.reasons, ['element virbr7 in fwd_in points to net_quiet_in, expected net_lab_in']);
    assert.equal(
      ch.script,
      'delete element inet kvmnet fwd_in { "virbr7" }\n' + renderFragment(buildFragment(LAB_INTENT)),
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

  test('switching lab from NAT to routed removes the NAT chain and element it no longer needs', () => {
    const routed = intentOf({ ...LAB, mode: 'routed' });
    const ch = backend.planNetwork(routed, appliedOf(LAB_INTENT), observe(fixture));
    assert.deepEqual(ch.reasons, [
      'element virbr7 in nat_out is no longer wanted',
      'chain net_lab_nat is no longer wanted',
      'chain net_lab_in has 4 rules not matching the 3 expected',
      'chain net_lab_out has 2 rules not matching the 2 expected',
      'chain net_lab_host has 2 rules not matching the 2 expected',
    ]);
    assert.equal(
      ch.script,
      'delete element inet kvmnet nat_out { "virbr7" }\n' +
        'flush chain inet kvmnet net_lab_nat\n' +
        'delete chain inet kvmnet net_lab_nat\n' +
        renderFragment(buildFragment(routed)),
    );
    assert.deepEqual(ch.applied.chains, ['net_lab_in', 'net_lab_out', 'net_lab_host']);
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
        'delete element inet kvmnet fwd_in { "virbr7" }',
        'delete element inet kvmnet fwd_out { "virbr7" }',
        'delete element inet kvmnet host_in { "virbr7" }',
        'delete element inet kvmnet nat_out { "virbr7" }',
        'flush chain inet kvmnet net_lab_in',
        'delete chain inet kvmnet net_lab_in',
        'flush chain inet kvmnet net_lab_out',
        'delete chain inet kvmnet net_lab_out',
        'flush chain inet kvmnet net_lab_host',
        'delete chain inet kvmnet net_lab_host',
        'flush chain inet kvmnet net_lab_nat',
        'delete chain inet kvmnet net_lab_nat',
        '',
      ].join('\n'),
    );
    assert.equal(ch.reasons.length, 8);
    assert.equal(ch.reasons[0], 'remove element virbr7 from fwd_in');
    assert.equal(ch.reasons[7], 'remove chain net_lab_nat');
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
    assert.deepEqual(repair.reasons, ['chain net_lab_in has 3 rules not matching the 4 expected']);
    nft(['-f', '-'], repair.script);
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
      [...left.elements.keys()].filter((k) => k.endsWith('|virbr7')),
      [],
    );
    assert.equal(backend.planNetwork(QUIET_INTENT, appliedOf(QUIET_INTENT), left).script, '');
    assert.equal(left.skeletonOk, true);
  });
});
