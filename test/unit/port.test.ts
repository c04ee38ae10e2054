// Ports: defaults, every refusal of buildPort, and the pure renderings (src/model/port.ts).
import { test, describe, mock } from 'node:test';
import assert from 'node:assert/strict';
import { refuses } from '../lib/refuses.js';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { buildNetwork, type NetworkDef } from '../../src/model/network.js';
import {
  buildPort,
  DEFAULT_MODEL,
  portId,
  qemuArgs,
  randomGuestMac,
  renderDhcpHosts,
  renderHosts,
  tapMac,
  type PortContext,
  type PortDef,
  type PortInput,
} from '../../src/model/port.js';

const DEFAULT_NET: NetworkDef = buildNetwork(
  { name: 'default', subnet: '192.168.122.0/24', bridge: 'virbr0' },
  { others: [] },
);
const LAB_NET: NetworkDef = buildNetwork(
  { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7' },
  { others: [DEFAULT_NET] },
);
const NO_DHCP_NET: NetworkDef = buildNetwork(
  { name: 'quiet', subnet: '10.20.0.0/24', bridge: 'virbr8', dhcp: null },
  { others: [] },
);

const MAC_RE = /^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/;

/** The low three bytes of n as "xx:xx:xx". */
function hexBytes(n: number): string {
  return [n >> 16, (n >> 8) & 255, n & 255].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * Runs fn while crypto.randomBytes returns the given byte triples in turn (port.ts imports it by
 * name, so the builtin's ES module exports are re-synced); fn gets the number of calls so far.
 */
function withRandomBytes<T>(draws: number[][], fn: (calls: () => number) => T): T {
  const queue = [...draws];
  const m = mock.method(crypto, 'randomBytes', (size: number): Buffer => {
    assert.equal(size, 3);
    const next = queue.shift();
    assert.ok(next, 'randomBytes called more often than expected');
    return Buffer.from(next);
  });
  syncBuiltinESMExports();
  try {
    return fn(() => m.mock.callCount());
  } finally {
    m.mock.restore();
    syncBuiltinESMExports();
  }
}

/** A stored port on "default" (override any field). */
function stored(over: Partial<PortDef> & Pick<PortDef, 'name' | 'vm' | 'index' | 'mac'>): PortDef {
  return { network: 'default', model: DEFAULT_MODEL, link: 'up', ...over };
}

function ctxOf(ports: PortDef[] = [], links: string[] = [], net: NetworkDef = DEFAULT_NET): PortContext {
  return { net, ports, links: new Set(links) };
}

function add(over: Partial<PortInput> = {}, ctx: PortContext = ctxOf()): PortDef {
  return buildPort({ network: ctx.net.name, vm: 'kvm1', ...over }, ctx);
}

describe('buildPort defaults', () => {
  test('a first port: vnet0, index 0, random 52:54:00 MAC, virtio-net-pci, link up, no ip', () => {
    const p = add();
    assert.match(p.mac, MAC_RE);
    assert.deepEqual(p, {
      name: 'vnet0',
      network: 'default',
      vm: 'kvm1',
      index: 0,
      mac: p.mac,
      model: 'virtio-net-pci',
      link: 'up',
    });
    assert.equal('ip' in p, false);
    assert.equal(DEFAULT_MODEL, 'virtio-net-pci');
  });

  test('the tap is the lowest vnetN free in both the host links and the stored ports', () => {
    assert.equal(add({}, ctxOf([], ['eth0', 'lo'])).name, 'vnet0');
    assert.equal(add({}, ctxOf([], ['vnet0', 'eth0'])).name, 'vnet1');
    const p0 = stored({ name: 'vnet0', vm: 'a', index: 0, mac: '52:54:00:00:00:01' });
    const p2 = stored({ name: 'vnet2', vm: 'b', index: 0, mac: '52:54:00:00:00:02' });
    // vnet0 is a stored port (its tap may be missing from the host), vnet1 only a host link.
    assert.equal(add({}, ctxOf([p0, p2], ['vnet1'])).name, 'vnet3');
    // A gap is filled.
    assert.equal(add({}, ctxOf([p0, p2], ['eth0'])).name, 'vnet1');
    assert.equal(add({}, ctxOf([p2], ['vnet1'])).name, 'vnet0');
  });

  test("the index is the lowest free one among the VM's ports, across networks", () => {
    const first = stored({ name: 'vnet0', vm: 'kvm1', index: 0, mac: '52:54:00:00:00:01' });
    assert.equal(add({}, ctxOf([first])).index, 1);
    // Another VM's ports do not count.
    const other = stored({ name: 'vnet1', vm: 'kvm2', index: 0, mac: '52:54:00:00:00:02' });
    assert.equal(add({}, ctxOf([other])).index, 0);
    assert.equal(add({ vm: 'kvm2' }, ctxOf([first, other])).index, 1);
    // A port on another network counts: the index is per VM, not per network.
    const onLab = stored({ name: 'vnet2', vm: 'kvm1', index: 0, mac: '52:54:00:00:00:03', network: 'lab' });
    assert.equal(add({}, ctxOf([onLab])).index, 1);
  });

  test('indexes are reused after a gap', () => {
    const p0 = stored({ name: 'vnet0', vm: 'kvm1', index: 0, mac: '52:54:00:00:00:01' });
    const p2 = stored({ name: 'vnet1', vm: 'kvm1', index: 2, mac: '52:54:00:00:00:02' });
    assert.equal(add({}, ctxOf([p0, p2])).index, 1);
    assert.equal(add({}, ctxOf([p2])).index, 0);
    const p1 = stored({ name: 'vnet2', vm: 'kvm1', index: 1, mac: '52:54:00:00:00:03' });
    assert.equal(add({}, ctxOf([p2, p1, p0])).index, 3);
  });

  test('explicit mac, model and ip are kept', () => {
    const p = add({ mac: '52:54:00:12:34:56', model: 'e1000e', ip: '192.168.122.50' });
    assert.deepEqual(p, {
      name: 'vnet0',
      network: 'default',
      vm: 'kvm1',
      index: 0,
      mac: '52:54:00:12:34:56',
      ip: '192.168.122.50',
      model: 'e1000e',
      link: 'up',
    });
  });

  test('a MAC with dashes and upper case is normalised', () => {
    assert.equal(add({ mac: '52-54-00-AA-BB-CC' }).mac, '52:54:00:aa:bb:cc');
    assert.equal(add({ mac: '52:54:00:Aa:bB:cC' }).mac, '52:54:00:aa:bb:cc');
  });

  test('random MACs avoid those of stored ports (crowded set, many calls)', () => {
    // Every MAC 52:54:00:00:0x:xx is taken.
    const ports: PortDef[] = [];
    for (let i = 0; i < 4096; i++) {
      ports.push(stored({ name: `vnet${i}`, vm: `vm${i}`, index: 0, mac: `52:54:00:${hexBytes(i)}` }));
    }
    const taken = new Set(ports.map((p) => p.mac));
    assert.equal(taken.size, 4096);
    const ctx = ctxOf(ports);
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const mac = add({}, ctx).mac;
      assert.match(mac, MAC_RE);
      assert.equal(taken.has(mac), false, `random MAC ${mac} is already used`);
      seen.add(mac);
    }
    // Random, not constant.
    assert.ok(seen.size > 290, `only ${seen.size} distinct MACs in 300 draws`);
  });

  test('buildPort draws again while the random MAC is used by a stored port', () => {
    const ports = [
      stored({ name: 'vnet0', vm: 'a', index: 0, mac: '52:54:00:aa:bb:cc' }),
      stored({ name: 'vnet1', vm: 'b', index: 0, mac: '52:54:00:00:00:01', network: 'lab' }),
    ];
    const mac = withRandomBytes(
      [
        [0xaa, 0xbb, 0xcc],
        [0x00, 0x00, 0x01],
        [0xaa, 0xbb, 0xcc],
        [0x12, 0x34, 0x56],
      ],
      (calls) => {
        const m = add({}, ctxOf(ports)).mac;
        assert.equal(calls(), 4);
        return m;
      },
    );
    assert.equal(mac, '52:54:00:12:34:56');
  });

  test('randomGuestMac never returns a used MAC (one sixty-fourth of the space taken)', () => {
    const used = new Set<string>();
    for (let i = 0; i < 1 << 18; i++) used.add(`52:54:00:${hexBytes(i)}`);
    for (let i = 0; i < 3000; i++) {
      const mac = randomGuestMac(used);
      assert.match(mac, MAC_RE);
      assert.equal(used.has(mac), false, `random MAC ${mac} is already used`);
    }
  });

  test('randomGuestMac keeps drawing until it finds a free MAC', () => {
    const used = new Set(['52:54:00:00:00:00', '52:54:00:ff:ff:ff']);
    const mac = withRandomBytes(
      [
        [0, 0, 0],
        [255, 255, 255],
        [0, 0, 0],
        [0x0a, 0x0b, 0xc0],
      ],
      (calls) => {
        const m = randomGuestMac(used);
        assert.equal(calls(), 4);
        return m;
      },
    );
    assert.equal(mac, '52:54:00:0a:0b:c0');
  });
});

describe('buildPort refusals', () => {
  const vmHint = 'use a DNS label: 1-63 letters, digits and "-", not starting or ending with "-"';

  test('invalid VM names', () => {
    for (const vm of ['-a', 'a-', 'a_b', 'a.b', 'a b', 'a'.repeat(64), '', 'wéb']) {
      refuses(() => add({ vm }), {
        code: 'invalid-vm',
        message: `VM name "${vm}" is not valid`,
        hint: vmHint,
      });
    }
  });

  test('valid VM names', () => {
    for (const vm of ['kvm1', 'a', '0', 'a'.repeat(63), 'web-01', 'Web-01', 'a--b']) {
      assert.equal(add({ vm }).vm, vm);
    }
  });

  test('malformed MAC', () => {
    for (const mac of ['52:54:00:aa:bb', '52:54:00:aa:bb:cc:dd', 'zz:54:00:aa:bb:cc', '525400aabbcc', '']) {
      refuses(() => add({ mac }), {
        code: 'invalid-mac',
        message: `mac "${mac}" is not a MAC address`,
        hint: 'write it as 52:54:00:xx:xx:xx',
      });
    }
  });

  test('multicast MAC: the message shows it normalised', () => {
    refuses(() => add({ mac: '01:00:5e:00:00:01' }), {
      code: 'invalid-mac',
      message: 'mac 01:00:5e:00:00:01 is a multicast address',
      hint: 'a guest MAC must be unicast: its first byte must be even, e.g. 52:54:00:…',
    });
    refuses(() => add({ mac: '53-54-00-AA-BB-CC' }), {
      code: 'invalid-mac',
      message: 'mac 53:54:00:aa:bb:cc is a multicast address',
    });
    refuses(() => add({ mac: 'ff:ff:ff:ff:ff:ff' }), {
      code: 'invalid-mac',
      message: 'mac ff:ff:ff:ff:ff:ff is a multicast address',
    });
  });

  test('MAC starting with fe (the taps’ prefix)', () => {
    refuses(() => add({ mac: 'fe:54:00:aa:bb:cc' }), {
      code: 'invalid-mac',
      message: 'mac fe:54:00:aa:bb:cc starts with fe',
      hint: "kvmnet gives the tap the guest's MAC with first byte fe; use e.g. 52:54:00:…",
    });
    refuses(() => add({ mac: 'FE-54-00-AA-BB-CC' }), {
      code: 'invalid-mac',
      message: 'mac fe:54:00:aa:bb:cc starts with fe',
    });
  });

  test('MAC already used by another port names its VM/netN id and tap', () => {
    const other = stored({ name: 'vnet4', vm: 'db', index: 2, mac: '52:54:00:aa:bb:cc', network: 'lab' });
    refuses(() => add({ mac: '52-54-00-AA-BB-CC' }, ctxOf([other])), {
      code: 'mac-taken',
      message: 'mac 52:54:00:aa:bb:cc is already used by port db/net2 (vnet4)',
      hint: 'pick another MAC or leave --mac out',
    });
  });

  test('bad model', () => {
    for (const model of ['Virtio', 'a b', '', '-virtio', 'virtio.net', 'a'.repeat(33)]) {
      refuses(() => add({ model }), {
        code: 'invalid-model',
        message: `model "${model}" is not a QEMU device name`,
        hint: 'e.g. virtio-net-pci, e1000e, rtl8139',
      });
    }
    for (const model of ['e1000e', 'rtl8139', 'virtio-net-pci', 'i82559_er', 'a'.repeat(32)]) {
      assert.equal(add({ model }).model, model);
    }
  });

  test('reservation that is not an IPv4 address', () => {
    for (const ip of ['192.168.122.05', '192.168.122.5/24', '192.168.122', 'kvm1', '192.168.122.256', '']) {
      refuses(() => add({ ip }), {
        code: 'invalid-ip',
        message: `ip "${ip}" is not an IPv4 address`,
        hint: 'write it as a.b.c.d',
      });
    }
  });

  test('reservation outside the subnet', () => {
    refuses(() => add({ ip: '192.168.123.5' }), {
      code: 'invalid-ip',
      message: 'ip 192.168.123.5 is outside subnet 192.168.122.0/24 of "default"',
      hint: 'pick an address inside the subnet',
    });
    refuses(() => add({ ip: '10.10.0.5' }), {
      code: 'invalid-ip',
      message: 'ip 10.10.0.5 is outside subnet 192.168.122.0/24 of "default"',
    });
  });

  test('reservation on the gateway', () => {
    refuses(() => add({ ip: '192.168.122.1' }), {
      code: 'invalid-ip',
      message: 'ip 192.168.122.1 is the gateway of "default"',
      hint: 'pick another host address',
    });
  });

  test('reservation on the network or broadcast address', () => {
    refuses(() => add({ ip: '192.168.122.0' }), {
      code: 'invalid-ip',
      message: 'ip 192.168.122.0 is the network address of 192.168.122.0/24',
      hint: 'pick a host address',
    });
    refuses(() => add({ ip: '192.168.122.255' }), {
      code: 'invalid-ip',
      message: 'ip 192.168.122.255 is the broadcast address of 192.168.122.0/24',
      hint: 'pick a host address',
    });
  });

  test('reservation already held by another port on the same network names it', () => {
    const other = stored({
      name: 'vnet3',
      vm: 'web',
      index: 1,
      mac: '52:54:00:00:00:01',
      ip: '192.168.122.20',
    });
    refuses(() => add({ ip: '192.168.122.20' }, ctxOf([other])), {
      code: 'ip-taken',
      message: 'ip 192.168.122.20 is already reserved for web/net1 (vnet3)',
      hint: 'pick another address',
    });
  });

  test('the same address reserved on a different network is allowed', () => {
    // The check is per network: a port elsewhere holding the same address text does not count.
    const elsewhere = stored({
      name: 'vnet0',
      vm: 'web',
      index: 0,
      mac: '52:54:00:00:00:01',
      network: 'lab-old',
      ip: '10.10.0.20',
    });
    const onDefault = stored({
      name: 'vnet1',
      vm: 'db',
      index: 0,
      mac: '52:54:00:00:00:02',
      ip: '192.168.122.20',
    });
    const p = add({ ip: '10.10.0.20' }, ctxOf([elsewhere, onDefault], [], LAB_NET));
    assert.equal(p.ip, '10.10.0.20');
    assert.equal(p.network, 'lab');
    assert.equal(p.name, 'vnet2');
    // The same port set refuses it on the network that holds it.
    refuses(() => add({ ip: '192.168.122.20' }, ctxOf([elsewhere, onDefault])), {
      code: 'ip-taken',
      message: 'ip 192.168.122.20 is already reserved for db/net0 (vnet1)',
    });
  });

  test('a network without DHCP takes no reservation', () => {
    refuses(() => add({ ip: '10.20.0.5' }, ctxOf([], [], NO_DHCP_NET)), {
      code: 'no-dhcp',
      message: 'network "quiet" has no DHCP server, so --ip cannot be reserved',
      hint: 'configure the address inside the guest, or give the network a DHCP range',
    });
    // Without --ip the port is fine.
    assert.equal(add({}, ctxOf([], [], NO_DHCP_NET)).network, 'quiet');
  });

  test('a reservation outside the DHCP pool but inside the subnet is accepted', () => {
    const net = buildNetwork(
      {
        name: 'pool',
        subnet: '10.30.0.0/24',
        bridge: 'virbr9',
        dhcp: { start: '10.30.0.100', end: '10.30.0.199' },
      },
      { others: [] },
    );
    assert.equal(add({ ip: '10.30.0.5' }, ctxOf([], [], net)).ip, '10.30.0.5');
    assert.equal(add({ ip: '10.30.0.254' }, ctxOf([], [], net)).ip, '10.30.0.254');
  });
});

describe('tapMac and portId', () => {
  test('the tap MAC is the guest MAC with first byte fe', () => {
    assert.equal(tapMac('52:54:00:aa:bb:cc'), 'fe:54:00:aa:bb:cc');
    assert.equal(tapMac('02:00:00:00:00:01'), 'fe:00:00:00:00:01');
  });

  test('portId is VM/netINDEX', () => {
    assert.equal(portId({ vm: 'kvm1', index: 0 }), 'kvm1/net0');
    assert.equal(portId({ vm: 'web-01', index: 12 }), 'web-01/net12');
  });
});

describe('qemuArgs', () => {
  test('netdev tap by name without scripts, device with model, netdev id and MAC', () => {
    const p = stored({ name: 'vnet3', vm: 'kvm1', index: 1, mac: '52:54:00:12:34:56', model: 'e1000e' });
    assert.deepEqual(qemuArgs(p), [
      '-netdev',
      'tap,id=net1,ifname=vnet3,script=no,downscript=no',
      '-device',
      'e1000e,netdev=net1,mac=52:54:00:12:34:56',
    ]);
  });

  test('a default port built by buildPort', () => {
    const p = add({ mac: '52:54:00:00:00:0a' });
    assert.deepEqual(qemuArgs(p), [
      '-netdev',
      'tap,id=net0,ifname=vnet0,script=no,downscript=no',
      '-device',
      'virtio-net-pci,netdev=net0,mac=52:54:00:00:00:0a',
    ]);
  });
});

describe('renderDhcpHosts and renderHosts', () => {
  const ports: PortDef[] = [
    stored({ name: 'vnet0', vm: 'web', index: 0, mac: '52:54:00:00:00:10', ip: '192.168.122.10' }),
    stored({ name: 'vnet1', vm: 'nofixed', index: 0, mac: '52:54:00:00:00:99' }),
    stored({ name: 'vnet2', vm: 'db', index: 0, mac: '52:54:00:00:00:09', ip: '192.168.122.9' }),
    stored({ name: 'vnet3', vm: 'cache', index: 0, mac: '52:54:00:00:01:00', ip: '192.168.122.100' }),
    stored({ name: 'vnet4', vm: 'dns', index: 0, mac: '52:54:00:00:00:02', ip: '192.168.122.2' }),
  ];

  test('dhcp-hostsfile: MAC,IP,NAME sorted by address numerically, ports without ip left out', () => {
    assert.equal(
      renderDhcpHosts(ports),
      '52:54:00:00:00:02,192.168.122.2,dns\n' +
        '52:54:00:00:00:09,192.168.122.9,db\n' +
        '52:54:00:00:00:10,192.168.122.10,web\n' +
        '52:54:00:00:01:00,192.168.122.100,cache\n',
    );
  });

  test('addn-hosts: IP NAME sorted by address numerically, ports without ip left out', () => {
    assert.equal(
      renderHosts(ports),
      '192.168.122.2 dns\n192.168.122.9 db\n192.168.122.10 web\n192.168.122.100 cache\n',
    );
  });

  test('sorting compares whole addresses, not the last octet', () => {
    const wide: PortDef[] = [
      stored({ name: 'vnet0', vm: 'b', index: 0, mac: '52:54:00:00:00:01', ip: '10.20.1.5' }),
      stored({ name: 'vnet1', vm: 'a', index: 0, mac: '52:54:00:00:00:02', ip: '10.20.0.200' }),
      stored({ name: 'vnet2', vm: 'c', index: 0, mac: '52:54:00:00:00:03', ip: '10.20.10.1' }),
      stored({ name: 'vnet3', vm: 'd', index: 0, mac: '52:54:00:00:00:04', ip: '10.20.2.1' }),
    ];
    assert.equal(renderHosts(wide), '10.20.0.200 a\n10.20.1.5 b\n10.20.2.1 d\n10.20.10.1 c\n');
  });

  test('no reservations: empty text', () => {
    assert.equal(renderDhcpHosts([]), '');
    assert.equal(renderHosts([]), '');
    assert.equal(renderDhcpHosts([ports[1] as PortDef]), '');
    assert.equal(renderHosts([ports[1] as PortDef]), '');
  });
});

describe('MACs that would clash on the bridge', () => {
  test("the bridge's own MAC is refused as a guest MAC", () => {
    refuses(() => add({ mac: DEFAULT_NET.mac }), {
      code: 'mac-taken',
      message: `mac ${DEFAULT_NET.mac} is the MAC of bridge virbr0`,
    });
  });

  test('a MAC whose tap MAC another port already has is refused', () => {
    const ports = [stored({ name: 'vnet0', vm: 'a', index: 0, mac: '52:54:00:aa:bb:cc' })];
    refuses(() => add({ mac: '56:54:00:aa:bb:cc' }, ctxOf(ports)), {
      code: 'mac-taken',
      message:
        'mac 56:54:00:aa:bb:cc would give its tap fe:54:00:aa:bb:cc, the tap MAC of port a/net0 (vnet0, guest 52:54:00:aa:bb:cc)',
    });
  });

  test("a random MAC avoids the bridge's MAC", () => {
    const bridgeLow = DEFAULT_NET.mac
      .slice(9)
      .split(':')
      .map((h) => parseInt(h, 16));
    const p = withRandomBytes([bridgeLow, [1, 2, 3]], (calls) => {
      const port = add();
      assert.equal(calls(), 2);
      return port;
    });
    assert.equal(p.mac, '52:54:00:01:02:03');
  });
});
