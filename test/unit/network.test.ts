// Network definitions: defaults and every refusal of buildNetwork (src/model/network.ts).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { refuses } from '../lib/refuses.js';
import { derivedMac } from '../../src/model/mac.js';
import {
  buildNetwork,
  diffNetworks,
  parseDhcpRangeText,
  pickBridgeName,
  type NetworkDef,
  type NetworkInput,
  type ValidateContext,
} from '../../src/model/network.js';

const NO_CTX: ValidateContext = { others: [] };
const BASE: NetworkInput = { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7' };

function build(over: Partial<NetworkInput>, ctx: ValidateContext = NO_CTX): NetworkDef {
  return buildNetwork({ ...BASE, ...over }, ctx);
}

describe('buildNetwork defaults', () => {
  test('a name, subnet and bridge give a NAT network with gateway .1 and DHCP .2-.254', () => {
    const def = buildNetwork({ name: 'default', subnet: '192.168.122.0/24', bridge: 'virbr0' }, NO_CTX);
    assert.deepEqual(def, {
      name: 'default',
      mode: 'nat',
      bridge: 'virbr0',
      mac: derivedMac('kvmnet:default'),
      subnet: '192.168.122.0/24',
      gateway: '192.168.122.1',
      dhcp: { start: '192.168.122.2', end: '192.168.122.254' },
      autostart: false,
    });
    assert.equal('domain' in def, false);
  });

  test('the derived MAC is stable, in 52:54:00, unicast, and differs per network name', () => {
    const a = build({});
    const b = build({});
    assert.equal(a.mac, b.mac);
    assert.match(a.mac, /^52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
    assert.equal(a.mac, derivedMac('kvmnet:lab'));
    // Pinned: a change of the derivation would change every existing bridge's MAC.
    assert.equal(a.mac, '52:54:00:a9:73:5a');
    assert.notEqual(build({ name: 'lab2' }).mac, a.mac);
  });

  test('a /16 gets gateway .0.1 and the whole rest of the subnet as DHCP pool', () => {
    const def = build({ subnet: '10.20.0.0/16' });
    assert.equal(def.gateway, '10.20.0.1');
    assert.deepEqual(def.dhcp, { start: '10.20.0.2', end: '10.20.255.254' });
  });

  test('a /30 has one DHCP address after the gateway', () => {
    const def = build({ subnet: '10.10.0.0/30' });
    assert.equal(def.gateway, '10.10.0.1');
    assert.deepEqual(def.dhcp, { start: '10.10.0.2', end: '10.10.0.2' });
  });

  test('explicit fields are kept; the MAC is normalised to lower-case colons', () => {
    const def = build({
      mode: 'routed',
      gateway: '10.10.0.1',
      dhcp: { start: '10.10.0.100', end: '10.10.0.199' },
      domain: 'lab.example',
      mac: '52-54-00-AB-CD-EF',
      autostart: true,
    });
    assert.deepEqual(def, {
      name: 'lab',
      mode: 'routed',
      bridge: 'virbr7',
      mac: '52:54:00:ab:cd:ef',
      subnet: '10.10.0.0/24',
      gateway: '10.10.0.1',
      dhcp: { start: '10.10.0.100', end: '10.10.0.199' },
      domain: 'lab.example',
      autostart: true,
    });
  });

  test('dhcp: null means no DHCP server', () => {
    assert.equal(build({ dhcp: null }).dhcp, null);
  });

  test('a gateway other than .1 moves the default pool after it', () => {
    const def = build({ gateway: '10.10.0.10' });
    assert.deepEqual(def.dhcp, { start: '10.10.0.11', end: '10.10.0.254' });
  });

  test('DHCP range starting right after the gateway and ending before broadcast is accepted', () => {
    assert.deepEqual(build({ dhcp: { start: '10.10.0.2', end: '10.10.0.254' } }).dhcp, {
      start: '10.10.0.2',
      end: '10.10.0.254',
    });
    // A range before the gateway is fine too.
    assert.deepEqual(
      build({ gateway: '10.10.0.254', dhcp: { start: '10.10.0.1', end: '10.10.0.253' } }).dhcp,
      {
        start: '10.10.0.1',
        end: '10.10.0.253',
      },
    );
  });

  test('the network being re-validated is not compared with its own stored definition', () => {
    const stored = build({});
    assert.deepEqual(build({}, { others: [stored] }), stored);
  });

  test('other networks on different subnets and bridges are fine', () => {
    const other = buildNetwork({ name: 'default', subnet: '192.168.122.0/24', bridge: 'virbr0' }, NO_CTX);
    const host = {
      prefixes: [{ cidr: '192.168.100.0/24', where: 'address 192.168.100.239/24 on eth1' }],
      links: ['eth1', 'lo'],
    };
    assert.equal(build({}, { others: [other], host }).subnet, '10.10.0.0/24');
  });

  test('a host default route (prefix 0) does not count as an overlap', () => {
    const host = { prefixes: [{ cidr: '0.0.0.0/0', where: 'route default' }], links: [] };
    assert.equal(build({}, { others: [], host }).subnet, '10.10.0.0/24');
  });
});

describe('buildNetwork refusals', () => {
  test('unknown mode', () => {
    refuses(() => build({ mode: 'bridged' }), {
      code: 'invalid-mode',
      message: 'mode "bridged" is not known',
      hint: 'use one of: nat, isolated, routed, bridge, open',
    });
    refuses(() => build({ mode: 'NAT' }), { code: 'invalid-mode', message: 'mode "NAT" is not known' });
  });

  test('missing subnet', () => {
    refuses(() => buildNetwork({ name: 'lab', bridge: 'virbr7' }, NO_CTX), {
      code: 'missing-subnet',
      message: 'network "lab" needs a subnet',
    });
  });

  test('malformed CIDR', () => {
    for (const s of ['10.10.0/24', '10.10.0.0', '10.10.0.0/33', '10.10.0.256/24', '010.10.0.0/24', 'lab']) {
      refuses(() => build({ subnet: s }), {
        code: 'invalid-subnet',
        message: `subnet "${s}" is not an IPv4 CIDR`,
        hint: 'write it as a.b.c.d/prefix, e.g. 10.10.0.0/24',
      });
    }
  });

  test('host bits set: the hint names the network address', () => {
    refuses(() => build({ subnet: '10.10.0.1/24' }), {
      code: 'invalid-subnet',
      message: 'subnet "10.10.0.1/24" has host bits set',
      hint: 'use the network address: 10.10.0.0/24',
    });
    refuses(() => build({ subnet: '192.168.122.77/16' }), {
      code: 'invalid-subnet',
      message: 'subnet "192.168.122.77/16" has host bits set',
      hint: 'use the network address: 192.168.0.0/16',
    });
  });

  test('prefix /31, /32 and /7 are refused; /8 and /30 are the limits', () => {
    for (const s of ['10.10.0.0/31', '10.10.0.0/32', '10.0.0.0/7', '0.0.0.0/0']) {
      refuses(() => build({ subnet: s }), {
        code: 'invalid-subnet',
        message: `subnet "${s}" has prefix /${s.split('/')[1]}`,
        hint: 'use a prefix from /8 to /30',
      });
    }
    assert.equal(build({ subnet: '10.0.0.0/8' }).subnet, '10.0.0.0/8');
    assert.equal(build({ subnet: '10.10.0.0/30' }).subnet, '10.10.0.0/30');
  });

  test('--gateway outside the subnet, or on its network or broadcast address', () => {
    const hint = 'pick an address inside the subnet other than its network and broadcast address';
    for (const gw of ['10.10.1.1', '10.10.0.0', '10.10.0.255', '192.168.122.1']) {
      refuses(() => build({ gateway: gw }), {
        code: 'invalid-gateway',
        message: `gateway ${gw} is not a host address of subnet 10.10.0.0/24`,
        hint,
      });
    }
  });

  test('--gateway that is not an address', () => {
    refuses(() => build({ gateway: '10.10.0.01' }), {
      code: 'invalid-address',
      message: 'gateway "10.10.0.01" is not an IPv4 address',
      hint: 'write it as a.b.c.d',
    });
    refuses(() => build({ gateway: '10.10.0.1/24' }), {
      code: 'invalid-address',
      message: 'gateway "10.10.0.1/24" is not an IPv4 address',
    });
  });

  test('DHCP range outside the subnet', () => {
    refuses(() => build({ dhcp: { start: '10.10.0.100', end: '10.10.1.5' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.100-10.10.1.5: end 10.10.1.5 is outside subnet 10.10.0.0/24',
      hint: 'keep the range inside the subnet',
    });
    refuses(() => build({ dhcp: { start: '10.9.255.200', end: '10.10.0.50' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.9.255.200-10.10.0.50: start 10.9.255.200 is outside subnet 10.10.0.0/24',
    });
  });

  test('DHCP range containing the gateway', () => {
    refuses(() => build({ dhcp: { start: '10.10.0.1', end: '10.10.0.10' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.1-10.10.0.10 contains the gateway 10.10.0.1',
      hint: 'start the range after the gateway, or end it before',
    });
    refuses(() => build({ gateway: '10.10.0.50', dhcp: { start: '10.10.0.2', end: '10.10.0.254' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.2-10.10.0.254 contains the gateway 10.10.0.50',
    });
    refuses(() => build({ gateway: '10.10.0.254', dhcp: { start: '10.10.0.100', end: '10.10.0.254' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.100-10.10.0.254 contains the gateway 10.10.0.254',
    });
  });

  test('DHCP range reversed: the hint gives it the right way round', () => {
    refuses(() => build({ dhcp: { start: '10.10.0.50', end: '10.10.0.10' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.50-10.10.0.10 is reversed',
      hint: 'write it as 10.10.0.10-10.10.0.50',
    });
  });

  test('DHCP range on the network or broadcast address', () => {
    refuses(() => build({ dhcp: { start: '10.10.0.0', end: '10.10.0.5' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.0-10.10.0.5: start 10.10.0.0 is the network address of 10.10.0.0/24',
      hint: 'use host addresses only',
    });
    refuses(() => build({ dhcp: { start: '10.10.0.5', end: '10.10.0.255' } }), {
      code: 'invalid-dhcp-range',
      message: 'dhcp range 10.10.0.5-10.10.0.255: end 10.10.0.255 is the broadcast address of 10.10.0.0/24',
      hint: 'use host addresses only',
    });
  });

  test('DHCP range bounds that are not addresses', () => {
    refuses(() => build({ dhcp: { start: '010.10.0.100', end: '10.10.0.199' } }), {
      code: 'invalid-address',
      message: 'dhcp range start "010.10.0.100" is not an IPv4 address',
    });
    refuses(() => build({ dhcp: { start: '10.10.0.100', end: 'x' } }), {
      code: 'invalid-address',
      message: 'dhcp range end "x" is not an IPv4 address',
    });
  });

  test('subnet overlapping another network names both networks and both subnets', () => {
    const other = buildNetwork({ name: 'default', subnet: '10.10.0.0/16', bridge: 'virbr0' }, NO_CTX);
    refuses(() => build({}, { others: [other] }), {
      code: 'subnet-overlap',
      message: 'subnet 10.10.0.0/24 of "lab" overlaps "default" (10.10.0.0/16)',
    });
    // Overlap is found whichever of the two is the wider prefix.
    refuses(() => build({ subnet: '10.0.0.0/8' }, { others: [other] }), {
      code: 'subnet-overlap',
      message: 'subnet 10.0.0.0/8 of "lab" overlaps "default" (10.10.0.0/16)',
    });
  });

  test('subnet overlapping a host prefix names where that prefix is', () => {
    const host = {
      prefixes: [
        { cidr: '0.0.0.0/0', where: 'route default via 192.168.100.254 dev eth1' },
        { cidr: '192.168.100.0/24', where: 'address 192.168.100.239/24 on eth1' },
        { cidr: '172.16.5.7/32', where: 'route 172.16.5.7 dev eth2' },
      ],
      links: ['eth1', 'eth2'],
    };
    refuses(() => build({ subnet: '192.168.100.0/24' }, { others: [], host }), {
      code: 'subnet-overlap',
      message:
        'subnet 192.168.100.0/24 of "lab" overlaps 192.168.100.0/24 (address 192.168.100.239/24 on eth1) on this host',
      hint: 'pick a subnet the host does not use yet',
    });
    refuses(() => build({ subnet: '172.16.0.0/16' }, { others: [], host }), {
      code: 'subnet-overlap',
      message:
        'subnet 172.16.0.0/16 of "lab" overlaps 172.16.5.7/32 (route 172.16.5.7 dev eth2) on this host',
    });
  });

  test('bridge name of 16 bytes (characters and multi-byte)', () => {
    refuses(() => build({ bridge: 'virbr01234567890' }), {
      code: 'invalid-bridge',
      message: 'bridge name "virbr01234567890" is 16 bytes long',
      hint: 'Linux interface names are at most 15 bytes; pick a shorter --bridge',
    });
    // Bytes, not characters: 15 characters, one of them the two-byte ü.
    refuses(() => build({ bridge: 'ü234567890123ab' }), {
      code: 'invalid-bridge',
      message: 'bridge name "ü234567890123ab" is 16 bytes long',
    });
    assert.equal(build({ bridge: 'virbr0123456789' }).bridge, 'virbr0123456789');
  });

  test('bridge name with a bad character', () => {
    for (const b of ['vir br', 'a/b', 'br:0', 'brü', '.', '..']) {
      refuses(() => build({ bridge: b }), {
        code: 'invalid-bridge',
        message: `bridge name "${b}" has characters outside [A-Za-z0-9_.-]`,
        hint: 'use letters, digits, "_", "." and "-" only, e.g. virbr7',
      });
    }
  });

  test('missing bridge name', () => {
    refuses(() => buildNetwork({ name: 'lab', subnet: '10.10.0.0/24' }, NO_CTX), {
      code: 'missing-bridge',
      message: 'network "lab" has no bridge name',
    });
    refuses(() => build({ bridge: '' }), {
      code: 'missing-bridge',
      message: 'network "lab" has no bridge name',
    });
  });

  test('bridge already used by another network', () => {
    const other = buildNetwork({ name: 'default', subnet: '192.168.122.0/24', bridge: 'virbr7' }, NO_CTX);
    refuses(() => build({}, { others: [other] }), {
      code: 'bridge-taken',
      message: 'bridge virbr7 is already used by network "default"',
      hint: 'pick another --bridge',
    });
  });

  test('bridge name of an existing host interface', () => {
    refuses(() => build({}, { others: [], host: { prefixes: [], links: ['eth0', 'virbr7'] } }), {
      code: 'bridge-taken',
      message: 'interface virbr7 already exists on this host',
    });
  });

  test('invalid network name', () => {
    for (const name of ['', '-lab', '.lab', '_lab', 'my lab', 'lab/1', 'läb', 'a'.repeat(33)]) {
      refuses(() => build({ name }), {
        code: 'invalid-name',
        message: `network name "${name}" is not valid`,
        hint: 'use 1-32 characters from A-Z a-z 0-9 _ . - starting with a letter or digit',
      });
    }
    assert.equal(build({ name: 'a'.repeat(32) }).name, 'a'.repeat(32));
    assert.equal(build({ name: '0lab_1.x-y' }).name, '0lab_1.x-y');
  });

  test('invalid domain', () => {
    for (const domain of [
      'Lab',
      'lab.',
      '.lab',
      'lab..example',
      '-lab',
      'lab-',
      'lab_1',
      'a'.repeat(64),
      '',
    ]) {
      refuses(() => build({ domain }), {
        code: 'invalid-domain',
        message: `domain "${domain}" is not a DNS name`,
        hint: 'use lower-case labels of a-z 0-9 and "-", separated by dots, e.g. lab or lab.example',
      });
    }
    assert.equal(build({ domain: 'a'.repeat(63) }).domain, 'a'.repeat(63));
    assert.equal(build({ domain: 'lab-1.example' }).domain, 'lab-1.example');
  });

  test('multicast or malformed MAC', () => {
    for (const mac of ['01:00:5e:00:00:01', '53:54:00:00:00:01', '52:54:00:00:00', 'zz:54:00:00:00:01']) {
      refuses(() => build({ mac }), {
        code: 'invalid-mac',
        message: `mac "${mac}" is not a unicast MAC address`,
        hint: 'write it as 52:54:00:xx:xx:xx',
      });
    }
  });
});

describe('pickBridgeName', () => {
  test('lowest free virbrN', () => {
    assert.equal(pickBridgeName(new Set()), 'virbr0');
    assert.equal(pickBridgeName(new Set(['virbr0'])), 'virbr1');
    assert.equal(pickBridgeName(new Set(['virbr0', 'virbr1', 'virbr3'])), 'virbr2');
    assert.equal(pickBridgeName(new Set(['virbr1', 'eth0'])), 'virbr0');
  });
});

describe('parseDhcpRangeText', () => {
  test('FIRST-LAST, surrounding blanks ignored', () => {
    assert.deepEqual(parseDhcpRangeText('10.10.0.100-10.10.0.199'), {
      start: '10.10.0.100',
      end: '10.10.0.199',
    });
    assert.deepEqual(parseDhcpRangeText('  10.10.0.100-10.10.0.199\n'), {
      start: '10.10.0.100',
      end: '10.10.0.199',
    });
  });

  test('anything else is refused with the text quoted', () => {
    for (const text of [
      '10.10.0.100',
      '10.10.0.100 - 10.10.0.199',
      '-10.10.0.199',
      '10.10.0.100-',
      'a-b-c',
      '',
    ]) {
      refuses(() => parseDhcpRangeText(text), {
        code: 'invalid-dhcp-range',
        message: `dhcp range "${text}" is not FIRST-LAST`,
        hint: 'write it as e.g. 10.10.0.100-10.10.0.199',
      });
    }
  });
});

describe('diffNetworks', () => {
  test('equal definitions: no lines', () => {
    assert.deepEqual(diffNetworks(build({}), build({})), []);
  });

  test('one "field old -> new" line per changed field, in a fixed order', () => {
    const a = build({});
    const b = build({ mode: 'routed', dhcp: null, domain: 'lab', autostart: true });
    assert.deepEqual(diffNetworks(a, b), [
      'mode nat -> routed',
      'dhcp.start 10.10.0.2 -> (none)',
      'dhcp.end 10.10.0.254 -> (none)',
      'domain (none) -> lab',
      'autostart false -> true',
    ]);
  });

  test('subnet, gateway, bridge, mac and range bounds', () => {
    const a = build({});
    const b = build({
      subnet: '10.20.0.0/16',
      gateway: '10.20.0.254',
      bridge: 'virbr8',
      mac: '52:54:00:00:00:01',
      dhcp: { start: '10.20.0.100', end: '10.20.0.199' },
    });
    assert.deepEqual(diffNetworks(a, b), [
      'bridge virbr7 -> virbr8',
      'mac 52:54:00:a9:73:5a -> 52:54:00:00:00:01',
      'subnet 10.10.0.0/24 -> 10.20.0.0/16',
      'gateway 10.10.0.1 -> 10.20.0.254',
      'dhcp.start 10.10.0.2 -> 10.20.0.100',
      'dhcp.end 10.10.0.254 -> 10.20.0.199',
    ]);
    assert.deepEqual(diffNetworks(b, a)[0], 'bridge virbr8 -> virbr7');
  });
});

describe('default DHCP pool when the gateway is the last host', () => {
  test('the pool is every host address before the gateway', () => {
    const d = buildNetwork(
      { name: 'lab', subnet: '10.10.0.0/24', bridge: 'virbr7', gateway: '10.10.0.254' },
      { others: [] },
    );
    assert.deepEqual(d.dhcp, { start: '10.10.0.1', end: '10.10.0.253' });
  });
});
