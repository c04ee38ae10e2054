// The uplink planner of bridged networks (src/engine/bridged.ts): snapshot, take-over and restore
// batches, the connectivity-check target and drift detection. Pure; the lab test runs them for real.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  bridgedDrift,
  checkTarget,
  restoreLines,
  routeLine,
  snapshotUplink,
  takeoverLines,
} from '../../src/engine/bridged.js';
import type { AddrInfo, LinkInfo, RouteInfo } from '../../src/host/host.js';

const ETH1: LinkInfo = {
  ifname: 'eth1',
  ifindex: 2,
  address: 'ae:9a:d3:90:73:ce',
  flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
  operstate: 'UP',
  mtu: 1500,
};
const ADDRS: AddrInfo[] = [
  { ifname: 'eth1', cidr: '192.168.100.239/24', dynamic: false, broadcast: '192.168.100.255' },
  { ifname: 'lo', cidr: '127.0.0.1/8', dynamic: false },
];
const ROUTES: RouteInfo[] = [
  { dst: 'default', gateway: '192.168.100.254', dev: 'eth1', metric: 100 },
  { dst: '192.168.100.0/24', dev: 'eth1', protocol: 'kernel', scope: 'link', prefsrc: '192.168.100.239' },
  { dst: '10.50.0.0/16', gateway: '192.168.100.1', dev: 'eth1', protocol: 'static', metric: 50 },
  { dst: '10.9.0.0/16', dev: 'eth9' },
];

describe('snapshotUplink', () => {
  test('keeps the NIC, its addresses and its routes except the connected ones', () => {
    assert.deepEqual(snapshotUplink(ETH1, ADDRS, ROUTES), {
      ifname: 'eth1',
      mac: 'ae:9a:d3:90:73:ce',
      mtu: 1500,
      up: true,
      addrs: [{ cidr: '192.168.100.239/24', dynamic: false, broadcast: '192.168.100.255' }],
      routes: [ROUTES[0], ROUTES[2]],
    });
  });
});

describe('take-over and restore', () => {
  const snap = snapshotUplink(ETH1, ADDRS, ROUTES);

  test('one batch: bridge with the MAC, addresses on both, enslave, addresses off the NIC, routes on the bridge', () => {
    assert.deepEqual(takeoverLines('virbr1', snap), [
      'link add name virbr1 address ae:9a:d3:90:73:ce type bridge stp_state 0 forward_delay 0',
      'link set dev virbr1 up',
      'addr add 192.168.100.239/24 broadcast 192.168.100.255 dev virbr1',
      'link set dev eth1 master virbr1',
      'addr del 192.168.100.239/24 dev eth1',
      'route replace default via 192.168.100.254 dev virbr1 metric 100',
      'route replace 10.50.0.0/16 via 192.168.100.1 dev virbr1 proto static metric 50',
    ]);
  });

  test('restore puts everything back on the NIC before the bridge goes', () => {
    assert.deepEqual(restoreLines('virbr1', snap), [
      'link set dev eth1 nomaster',
      'link set dev eth1 up',
      'addr add 192.168.100.239/24 broadcast 192.168.100.255 dev eth1',
      'route replace default via 192.168.100.254 dev eth1 metric 100',
      'route replace 10.50.0.0/16 via 192.168.100.1 dev eth1 proto static metric 50',
      'link del dev virbr1',
    ]);
  });

  test('a NIC without addresses: only the bridge and the port; a down NIC is brought up and back down', () => {
    const bare = snapshotUplink({ ...ETH1, flags: ['BROADCAST', 'MULTICAST'], mtu: 9000 }, [], []);
    assert.deepEqual(takeoverLines('virbr1', bare), [
      'link add name virbr1 address ae:9a:d3:90:73:ce mtu 9000 type bridge stp_state 0 forward_delay 0',
      'link set dev virbr1 up',
      'link set dev eth1 master virbr1',
      'link set dev eth1 up',
    ]);
    assert.deepEqual(restoreLines('virbr1', bare), [
      'link set dev eth1 nomaster',
      'link set dev eth1 down',
      'link del dev virbr1',
    ]);
  });

  test('a dynamic address keeps its lifetimes', () => {
    const dyn = snapshotUplink(
      ETH1,
      [{ ifname: 'eth1', cidr: '192.168.100.150/24', dynamic: true, validLft: 3500, preferredLft: 3500 }],
      [],
    );
    assert.equal(
      takeoverLines('virbr1', dyn)[2],
      'addr add 192.168.100.150/24 dev virbr1 valid_lft 3500 preferred_lft 3500',
    );
  });

  test('route lines carry scope for gateway-less routes and the preferred source', () => {
    assert.equal(
      routeLine({ dst: '10.1.0.0/16', scope: 'link', prefsrc: '10.0.0.2' }, 'br0'),
      'route replace 10.1.0.0/16 dev br0 scope link src 10.0.0.2',
    );
  });
});

describe('checkTarget', () => {
  const snap = snapshotUplink(ETH1, ADDRS, ROUTES);
  test('the default gateway first', () => {
    assert.equal(
      checkTarget(snap, [{ dst: '192.168.100.7', lladdr: 'aa:bb:cc:dd:ee:ff', state: ['REACHABLE'] }]),
      '192.168.100.254',
    );
  });
  test('without a default route, a known neighbour; without one, nothing', () => {
    const noGw = { ...snap, routes: [] };
    assert.equal(
      checkTarget(noGw, [
        { dst: '192.168.100.8', state: ['FAILED'] },
        { dst: '192.168.100.7', lladdr: 'aa:bb:cc:dd:ee:ff', state: ['STALE'] },
      ]),
      '192.168.100.7',
    );
    assert.equal(checkTarget(noGw, [{ dst: '192.168.100.8', state: ['INCOMPLETE'] }]), undefined);
  });
});

describe('bridgedDrift', () => {
  const snap = snapshotUplink(ETH1, ADDRS, ROUTES);
  const links = new Map<string, LinkInfo>([
    ['virbr1', { ...ETH1, ifname: 'virbr1', kind: 'bridge' }],
    ['eth1', { ...ETH1, master: 'virbr1' }],
  ]);
  const addrs: AddrInfo[] = [{ ifname: 'virbr1', cidr: '192.168.100.239/24', dynamic: false }];
  const routes: RouteInfo[] = [
    { dst: 'default', gateway: '192.168.100.254', dev: 'virbr1', metric: 100 },
    { dst: '10.50.0.0/16', gateway: '192.168.100.1', dev: 'virbr1', metric: 50 },
  ];
  test('in place: no drift', () => {
    assert.deepEqual(bridgedDrift('virbr1', snap, links, addrs, routes), []);
  });
  test('each difference is named', () => {
    const l2 = new Map(links);
    l2.set('eth1', ETH1);
    assert.deepEqual(bridgedDrift('virbr1', snap, l2, [], routes.slice(1)), [
      'eth1 is not a port of virbr1',
      'address 192.168.100.239/24 missing on virbr1',
      'route default via 192.168.100.254 missing on virbr1',
    ]);
    assert.deepEqual(bridgedDrift('virbr1', snap, new Map(), addrs, routes), ['bridge virbr1 is missing']);
  });
});
