// Flow offload (issue 9): the `offload` field of a network, the flowtable kvmnet renders for nat
// networks, the run-time probe of the kernel's flowtable support (injectable: this machine's
// kernel has none, so the "present" path is covered here with a fake probe) and the drift check
// against what is really applied.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { driverFor } from '../../src/drivers/registry.js';
import { NftablesBackend, parseNftJson } from '../../src/firewall/nftables.js';
import type { FirewallObserved } from '../../src/firewall/backend.js';
import type { Host } from '../../src/host/host.js';
import { compareNft, desiredNft } from '../../src/engine/drift.js';
import { parseDefinitions, renderDefinitions } from '../../src/model/definitions.js';
import { buildNetwork, diffNetworks, type NetworkDef } from '../../src/model/network.js';
import {
  buildFragment,
  renderChains,
  renderFragment,
  renderSkeleton,
  withoutOffload,
} from '../../src/render/nft.js';

const LAB: NetworkDef = buildNetwork(
  { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7' },
  { others: [] },
);
const LAB_OFF: NetworkDef = buildNetwork(
  { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7', offload: false },
  { others: [] },
);
const intent = (d: NetworkDef) => driverFor(d.mode).firewall(d, []);

/** An observation of an empty host (no table) with the given kernel support. */
function none(flowtableSupport: boolean): FirewallObserved {
  return { ...parseNftJson(null), flowtableSupport };
}

describe('offload: the model', () => {
  test('on by default and not stored; --no-offload stores offload: false', () => {
    assert.equal(LAB.offload, undefined);
    assert.equal('offload' in LAB, false);
    assert.equal(LAB_OFF.offload, false);
    assert.deepEqual(diffNetworks(LAB, LAB_OFF), ['offload on -> off']);
    // offload: true is the default, so it is not stored either.
    const on = buildNetwork(
      { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7', offload: true },
      { others: [] },
    );
    assert.deepEqual(on, LAB);
  });

  test('YAML offload: false round-trips; a wrong type is refused', () => {
    const yaml =
      'version: 1\nnetworks:\n  lab:\n    mode: nat\n    subnet: 10.10.0.0/24\n    offload: false\n';
    const [input] = parseDefinitions(yaml, 'x.yaml');
    assert.equal(input?.offload, false);
    const def = buildNetwork({ ...input, bridge: 'virbr7' }, { others: [] });
    assert.match(renderDefinitions([def]), /\n {4}offload: false\n/);
    assert.doesNotMatch(renderDefinitions([LAB]), /offload/);
    assert.throws(
      () => parseDefinitions(yaml.replace('offload: false', 'offload: "no"'), 'x.yaml'),
      /offload/,
    );
  });

  test('offload: false on a mode without NAT is refused naming the field', () => {
    for (const mode of ['isolated', 'routed', 'open']) {
      assert.throws(
        () =>
          buildNetwork(
            { name: 'x', mode, subnet: '10.11.0.0/24', bridge: 'virbr4', offload: false },
            { others: [] },
          ),
        /offload is for nat networks/,
      );
    }
    assert.throws(
      () =>
        buildNetwork(
          { name: 'b', mode: 'bridge', uplink: 'eth1', bridge: 'br1', offload: false },
          { others: [] },
        ),
      /offload does not apply to bridged network/,
    );
  });
});

describe('offload: rendering', () => {
  test('nat with offload: a flowtable on the bridge, and a flow add rule first in the out chain', () => {
    const i = intent(LAB);
    assert.deepEqual(i.offload, { devices: ['virbr7'] });
    const f = buildFragment(i);
    assert.deepEqual(f.flowtables, [{ name: 'net_lab_ft', devices: ['virbr7'] }]);
    const out = f.chains.find((c) => c.name === 'net_lab_out');
    assert.equal(out?.rules[0], 'meta l4proto { tcp, udp } ct state established flow add @net_lab_ft');
    const text = renderChains(f);
    assert.ok(
      text.startsWith(
        'add flowtable inet kvmnet net_lab_ft { hook ingress priority filter; devices = { "virbr7" }; }\n',
      ),
      text,
    );
  });

  test('--no-offload, the kernel without flowtables, and other modes: no flowtable, no flow rule', () => {
    const off = buildFragment(intent(LAB_OFF));
    const absent = buildFragment(withoutOffload(intent(LAB), false));
    assert.deepEqual(off, absent);
    assert.deepEqual(off.flowtables, []);
    assert.doesNotMatch(renderSkeleton() + renderFragment(off), /flow/);
    // Offload changes the rules, so their tag: a toggled running network gets its chains rewritten.
    assert.notEqual(off.tag, buildFragment(intent(LAB)).tag);
    // withoutOffload(…, true) keeps it.
    assert.deepEqual(withoutOffload(intent(LAB), true), intent(LAB));
    for (const mode of ['isolated', 'routed']) {
      const d = buildNetwork({ name: 'r', mode, subnet: '10.12.0.0/24', bridge: 'virbr3' }, { others: [] });
      assert.equal(intent(d).offload, undefined, mode);
    }
  });
});

describe('offload: the backend', () => {
  const backend = new NftablesBackend({} as Host, () => Promise.resolve(true));

  test('kernel with flowtables: the plan creates the flowtable and records it; remove deletes it after the chains', () => {
    const ch = backend.planNetwork(intent(LAB), undefined, none(true));
    assert.match(ch.script, /^add flowtable inet kvmnet net_lab_ft /m);
    assert.match(ch.script, /flow add @net_lab_ft/);
    assert.deepEqual(ch.applied.flowtables, ['net_lab_ft']);
    const obs: FirewallObserved = {
      ...parseNftJson({
        nftables: [
          { table: { family: 'inet', name: 'kvmnet' } },
          { chain: { name: 'net_lab_out' } },
          {
            flowtable: {
              family: 'inet',
              table: 'kvmnet',
              name: 'net_lab_ft',
              hook: 'ingress',
              dev: 'virbr7',
            },
          },
        ],
      }),
      flowtableSupport: true,
    };
    assert.deepEqual([...(obs.flowtables ?? [])], ['net_lab_ft']);
    const rm = backend.planRemove(ch.applied, obs, true);
    const lines = rm.script.trim().split('\n');
    assert.equal(lines.at(-1), 'delete flowtable inet kvmnet net_lab_ft');
    assert.ok(lines.indexOf('delete chain inet kvmnet net_lab_out') < lines.length - 1);
    assert.ok(rm.reasons.includes('remove flowtable net_lab_ft'));
    // Switched to --no-offload while running: the flowtable is stale and goes.
    const sw = backend.planNetwork(intent(LAB_OFF), ch.applied, obs);
    assert.ok(sw.reasons.includes('flowtable net_lab_ft is no longer wanted'), sw.reasons.join('; '));
    assert.match(sw.script, /^delete flowtable inet kvmnet net_lab_ft$/m);
  });

  test('kernel without flowtables: the plan has no flowtable and records none', () => {
    const ch = backend.planNetwork(intent(LAB), undefined, none(false));
    assert.doesNotMatch(ch.script, /flow/);
    assert.equal(ch.applied.flowtables, undefined);
    assert.equal(ch.script, backend.planNetwork(intent(LAB_OFF), undefined, none(false)).script);
  });

  test('observe() asks the probe once and reports its answer', async () => {
    let calls = 0;
    const host = { nftListTable: () => Promise.resolve(null) } as unknown as Host;
    const b = new NftablesBackend(host, () => {
      calls++;
      return Promise.resolve(false);
    });
    assert.equal((await b.observe()).flowtableSupport, false);
    assert.equal((await b.observe()).flowtableSupport, false);
    assert.equal(calls, 1);
  });

  test('observe({ probe: false }) does not ask the kernel until a nat network needs the answer', async () => {
    let calls = 0;
    const host = { nftListTable: () => Promise.resolve(null) } as unknown as Host;
    const b = new NftablesBackend(host, () => {
      calls++;
      return Promise.resolve(true);
    });
    assert.equal((await b.observe({ probe: false })).flowtableSupport, undefined);
    assert.equal(calls, 0);
    assert.equal((await b.observe()).flowtableSupport, true);
    assert.equal((await b.observe({ probe: false })).flowtableSupport, true, 'a known answer is reported');
    assert.equal(calls, 1);
  });
});

describe('offload: drift', () => {
  test('offload skipped for lack of kernel support is not a finding; a missing flow rule where it is supported is', () => {
    // What kvmnet applies on a kernel without flowtables, as observed afterwards.
    const applied = buildFragment(withoutOffload(intent(LAB), false));
    const items: unknown[] = [{ table: { family: 'inet', name: 'kvmnet' } }];
    for (const c of applied.chains) {
      items.push({ chain: { name: c.name } });
      for (let k = 0; k < c.rules.length; k++)
        items.push({ rule: { chain: c.name, comment: `lab#${applied.tag}` } });
    }
    const obs = parseNftJson({ nftables: items });
    const chainFindings = (support: boolean) =>
      compareNft('lab', desiredNft(withoutOffload(intent(LAB), support)), {
        ...obs,
        flowtableSupport: support,
      })
        .filter((f) => f.kind === 'nft-chain' && f.object.includes('net_lab_'))
        .map((f) => f.object);
    assert.deepEqual(chainFindings(false), []);
    assert.ok(chainFindings(true).includes('chain inet kvmnet net_lab_out'));
  });
});
