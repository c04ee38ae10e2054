// Peered routed networks (isolation exceptions): validation, which network renders a pair, and
// that peers survive the YAML file and libvirt XML (kvmnet's metadata).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDefinitions, renderDefinitions } from '../../src/model/definitions.js';
import { KvmnetError } from '../../src/model/errors.js';
import { importNetworkXml, renderNetworkXml } from '../../src/model/libvirt.js';
import { buildNetwork, checkPeers, peerBridgesOf, type NetworkDef } from '../../src/model/network.js';

const routed = (name: string, n: number, peers?: string[]): NetworkDef =>
  buildNetwork(
    { name, mode: 'routed', subnet: `10.${n}.0.0/24`, bridge: `br${n}`, ...(peers ? { peers } : {}) },
    { others: [] },
  );

const refused = (fn: () => unknown, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof KvmnetError && e.exitCode === 2 && re.test(e.message));
};

test('peers: only on routed networks, names only, not itself; sorted and deduplicated', () => {
  refused(
    () => buildNetwork({ name: 'a', subnet: '10.1.0.0/24', bridge: 'b1', peers: ['x'] }, { others: [] }),
    /peers are for routed networks, not nat/,
  );
  refused(() => routed('a', 1, ['a']), /cannot be its own peer/);
  refused(() => routed('a', 1, ['x y']), /is not a network name/);
  assert.deepEqual(routed('a', 1, ['c', 'b', 'c']).peers, ['b', 'c']);
  assert.equal(routed('a', 1, []).peers, undefined);
});

test('checkPeers: a peer must be defined and routed', () => {
  const b = routed('b', 2);
  checkPeers([routed('a', 1, ['b']), b]);
  refused(() => checkPeers([routed('a', 1, ['b'])]), /peer "b" of network "a" is not defined/);
  const nat = buildNetwork({ name: 'b', subnet: '10.2.0.0/24', bridge: 'br2' }, { others: [] });
  refused(() => checkPeers([routed('a', 1, ['b']), nat]), /peer "b" of network "a" is nat, not routed/);
});

test('peerBridgesOf: the naming side renders the pair; when both name each other, the lower name', () => {
  const a = routed('a', 1, ['b']);
  const b = routed('b', 2);
  assert.deepEqual(peerBridgesOf(a, [a, b]), ['br2']);
  assert.deepEqual(peerBridgesOf(b, [a, b]), []);
  const b2 = routed('b', 2, ['a']);
  assert.deepEqual(peerBridgesOf(a, [a, b2]), ['br2']);
  assert.deepEqual(peerBridgesOf(b2, [a, b2]), []);
  // A peer that is gone or no longer routed is left out.
  assert.deepEqual(peerBridgesOf(a, [a]), []);
  const natB = { ...b, mode: 'nat' as const };
  assert.deepEqual(peerBridgesOf(a, [a, natB]), []);
});

test('peers survive the definitions file and libvirt XML', () => {
  const a = routed('a', 1, ['b']);
  const back = parseDefinitions(renderDefinitions([a, routed('b', 2)]), 'x.yaml');
  assert.deepEqual(back[0]?.peers, ['b']);
  const xml = renderNetworkXml(a);
  assert.match(xml, /peers="b"/);
  assert.deepEqual(importNetworkXml(xml).input.peers, ['b']);
});
