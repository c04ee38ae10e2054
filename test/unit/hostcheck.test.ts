// The host check's comparison (test/lib/hostcheck.ts): every kind of change is reported, equal
// recordings give nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffHostState, type HostState } from '../lib/hostcheck.js';

const base: HostState = {
  links: [
    'eth1 veth mtu=1500 mac=aa:bb:cc:dd:ee:01 master=- up',
    'lo - mtu=65536 mac=00:00:00:00:00:00 master=- up',
  ],
  addrs: ['eth1 192.168.100.239/24', 'lo 127.0.0.1/8'],
  routes: ['default via 192.168.100.254 dev eth1'],
  nft: 'table inet filter {\n\tchain admin {\n\t\taccept\n\t}\n}\n',
  sysctls: { 'net.ipv4.ip_forward': '0' },
};
const clone = (): HostState => structuredClone(base);

test('equal recordings: no difference', () => {
  assert.deepEqual(diffHostState(base, clone()), []);
});

test('a link that appeared, vanished or changed (master, state, MTU) is reported', () => {
  const a = clone();
  a.links.push('virbr0 bridge mtu=1500 mac=52:54:00:00:00:01 master=- up');
  assert.deepEqual(diffHostState(base, a), [
    '+ link virbr0 bridge mtu=1500 mac=52:54:00:00:00:01 master=- up',
  ]);
  const b = clone();
  b.links[0] = 'eth1 veth mtu=1500 mac=aa:bb:cc:dd:ee:01 master=br0 up';
  assert.deepEqual(diffHostState(base, b), [
    '- link eth1 veth mtu=1500 mac=aa:bb:cc:dd:ee:01 master=- up',
    '+ link eth1 veth mtu=1500 mac=aa:bb:cc:dd:ee:01 master=br0 up',
  ]);
  const c = clone();
  c.links.pop();
  assert.equal(diffHostState(base, c).length, 1);
});

test('addresses and routes: moved or lost', () => {
  const a = clone();
  a.addrs = ['br0 192.168.100.239/24', 'lo 127.0.0.1/8'];
  a.routes = [];
  assert.deepEqual(diffHostState(base, a), [
    '- address eth1 192.168.100.239/24',
    '+ address br0 192.168.100.239/24',
    '- route default via 192.168.100.254 dev eth1',
  ]);
});

test('a foreign nft table changed, flushed, or its rules reordered', () => {
  const a = clone();
  a.nft = 'table inet filter {\n\tchain admin {\n\t}\n}\n';
  assert.deepEqual(diffHostState(base, a), ['- nft accept']);
  const b = clone();
  b.nft = '';
  assert.ok(diffHostState(base, b).some((d) => d === '- nft table inet filter {'));
  const c = clone();
  c.nft = 'table inet filter {\n\t\taccept\n\tchain admin {\n\t}\n}\n';
  assert.deepEqual(diffHostState(base, c), ['~ nft ruleset reordered']);
  const d = clone();
  d.nft += 'table inet kvmnet {\n}\n';
  assert.deepEqual(diffHostState(base, d), ['+ nft table inet kvmnet {']);
});

test('a sysctl that changed', () => {
  const a = clone();
  a.sysctls['net.ipv4.ip_forward'] = '1';
  assert.deepEqual(diffHostState(base, a), ['~ sysctl net.ipv4.ip_forward 0 -> 1']);
});
