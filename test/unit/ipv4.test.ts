// IPv4 parsing and prefix arithmetic (src/model/ipv4.ts).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcastOf,
  contains,
  formatCidr,
  formatIpv4,
  hasHostBits,
  hostCount,
  maskOf,
  netmaskText,
  networkOf,
  overlaps,
  parseCidr,
  parseIpv4,
  type Cidr,
} from '../../src/model/ipv4.js';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  assert.ok(c, `test setup: ${text} should parse`);
  return c;
}

describe('parseIpv4', () => {
  test('parses dotted quads to unsigned 32-bit numbers', () => {
    assert.equal(parseIpv4('0.0.0.0'), 0);
    assert.equal(parseIpv4('10.10.0.1'), 0x0a0a0001);
    assert.equal(parseIpv4('192.168.122.1'), 0xc0a87a01);
    assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
    assert.equal(parseIpv4('1.2.3.4'), 16909060);
  });

  test('rejects leading zeros', () => {
    assert.equal(parseIpv4('01.2.3.4'), undefined);
    assert.equal(parseIpv4('10.010.0.1'), undefined);
    assert.equal(parseIpv4('10.0.0.00'), undefined);
    assert.equal(parseIpv4('010.10.0.100'), undefined);
  });

  test('rejects octets above 255', () => {
    assert.equal(parseIpv4('256.0.0.0'), undefined);
    assert.equal(parseIpv4('10.0.0.300'), undefined);
    assert.equal(parseIpv4('10.0.0.1000'), undefined);
  });

  test('rejects 3 or 5 octets', () => {
    assert.equal(parseIpv4('10.0.1'), undefined);
    assert.equal(parseIpv4('10.0.0.1.5'), undefined);
    assert.equal(parseIpv4('10.0.0.'), undefined);
    assert.equal(parseIpv4('.10.0.0.1'), undefined);
  });

  test('rejects empty and non-decimal text', () => {
    assert.equal(parseIpv4(''), undefined);
    assert.equal(parseIpv4('...'), undefined);
    assert.equal(parseIpv4('a.b.c.d'), undefined);
    assert.equal(parseIpv4('0x0a.0.0.1'), undefined);
    assert.equal(parseIpv4('10.0.0.-1'), undefined);
    assert.equal(parseIpv4('10.0.0.+1'), undefined);
    assert.equal(parseIpv4(' 10.0.0.1'), undefined);
    assert.equal(parseIpv4('10.0.0.1 '), undefined);
    assert.equal(parseIpv4('10.0.0.1\n'), undefined);
    assert.equal(parseIpv4('10.0.0.1/24'), undefined);
  });

  test('formatIpv4 is the inverse', () => {
    for (const t of ['0.0.0.0', '10.10.0.1', '192.168.122.254', '255.255.255.255', '172.16.5.9']) {
      assert.equal(formatIpv4(parseIpv4(t) ?? -1), t);
    }
  });
});

describe('parseCidr', () => {
  test('parses address and prefix, keeping host bits as written', () => {
    assert.deepEqual(parseCidr('10.10.0.0/24'), { addr: 0x0a0a0000, prefix: 24 });
    assert.deepEqual(parseCidr('192.168.100.239/24'), { addr: 0xc0a864ef, prefix: 24 });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { addr: 0, prefix: 0 });
    assert.deepEqual(parseCidr('10.0.0.1/32'), { addr: 0x0a000001, prefix: 32 });
  });

  test('rejects malformed text', () => {
    for (const t of [
      '',
      '10.10.0.0',
      '10.10.0.0/',
      '/24',
      '10.10.0/24',
      '10.10.0.0/33',
      '10.10.0.0/08',
      '10.10.0.0/024',
      '10.10.0.0/-1',
      '10.10.0.0/24 ',
      ' 10.10.0.0/24',
      '010.10.0.0/24',
      '10.10.0.256/24',
      '10.10.0.0/2a',
      '10.10.0.0/24/8',
    ]) {
      assert.equal(parseCidr(t), undefined, `parseCidr(${JSON.stringify(t)})`);
    }
  });

  test('formatCidr writes it back', () => {
    assert.equal(formatCidr(cidr('192.168.100.239/24')), '192.168.100.239/24');
    assert.equal(formatCidr({ addr: networkOf(cidr('192.168.100.239/24')), prefix: 24 }), '192.168.100.0/24');
  });
});

describe('prefix arithmetic', () => {
  test('maskOf and netmaskText', () => {
    assert.equal(maskOf(0), 0);
    assert.equal(maskOf(8), 0xff000000);
    assert.equal(maskOf(32), 0xffffffff);
    assert.equal(netmaskText(0), '0.0.0.0');
    assert.equal(netmaskText(8), '255.0.0.0');
    assert.equal(netmaskText(16), '255.255.0.0');
    assert.equal(netmaskText(20), '255.255.240.0');
    assert.equal(netmaskText(24), '255.255.255.0');
    assert.equal(netmaskText(30), '255.255.255.252');
    assert.equal(netmaskText(32), '255.255.255.255');
  });

  test('hasHostBits', () => {
    assert.equal(hasHostBits(cidr('10.10.0.0/24')), false);
    assert.equal(hasHostBits(cidr('10.10.0.1/24')), true);
    assert.equal(hasHostBits(cidr('10.10.0.0/16')), false);
    assert.equal(hasHostBits(cidr('10.10.1.0/16')), true);
    assert.equal(hasHostBits(cidr('10.0.0.0/7')), false);
    assert.equal(hasHostBits(cidr('11.0.0.0/7')), true);
    assert.equal(hasHostBits(cidr('10.0.0.1/32')), false);
    assert.equal(hasHostBits(cidr('0.0.0.0/0')), false);
    assert.equal(hasHostBits(cidr('1.0.0.0/0')), true);
  });

  test('networkOf and broadcastOf', () => {
    assert.equal(formatIpv4(networkOf(cidr('192.168.100.239/24'))), '192.168.100.0');
    assert.equal(formatIpv4(broadcastOf(cidr('192.168.122.0/24'))), '192.168.122.255');
    assert.equal(formatIpv4(broadcastOf(cidr('10.20.0.0/16'))), '10.20.255.255');
    assert.equal(formatIpv4(broadcastOf(cidr('10.10.0.0/30'))), '10.10.0.3');
    assert.equal(formatIpv4(broadcastOf(cidr('10.10.0.7/29'))), '10.10.0.7');
    assert.equal(formatIpv4(broadcastOf(cidr('0.0.0.0/0'))), '255.255.255.255');
    assert.equal(formatIpv4(broadcastOf(cidr('10.0.0.5/32'))), '10.0.0.5');
    // Unsigned: no negative numbers for addresses with the top bit set.
    assert.equal(broadcastOf(cidr('192.168.0.0/16')), 0xc0a8ffff);
  });

  test('contains', () => {
    const c = cidr('10.10.0.0/24');
    assert.equal(contains(c, parseIpv4('10.10.0.0') ?? 0), true);
    assert.equal(contains(c, parseIpv4('10.10.0.1') ?? 0), true);
    assert.equal(contains(c, parseIpv4('10.10.0.255') ?? 0), true);
    assert.equal(contains(c, parseIpv4('10.10.1.0') ?? 0), false);
    assert.equal(contains(c, parseIpv4('10.9.255.255') ?? 0), false);
    assert.equal(contains(cidr('192.168.0.0/16'), parseIpv4('192.168.255.1') ?? 0), true);
    assert.equal(contains(cidr('192.168.0.0/16'), parseIpv4('192.169.0.1') ?? 0), false);
    assert.equal(contains(cidr('0.0.0.0/0'), parseIpv4('8.8.8.8') ?? 0), true);
  });

  test('overlaps is symmetric and compares on the shorter prefix', () => {
    const cases: Array<[string, string, boolean]> = [
      ['10.10.0.0/24', '10.10.0.0/24', true],
      ['10.10.0.0/24', '10.10.0.0/16', true],
      ['10.10.0.0/24', '10.10.1.0/24', false],
      ['10.10.0.0/23', '10.10.1.0/24', true],
      ['10.10.0.0/24', '10.10.0.128/25', true],
      ['10.10.0.0/25', '10.10.0.128/25', false],
      ['192.168.122.0/24', '192.168.100.239/24', false],
      ['192.168.100.0/24', '192.168.100.239/24', true],
      ['192.168.0.0/16', '192.168.5.7/32', true],
      ['10.0.0.0/8', '11.0.0.0/8', false],
      ['10.0.0.0/8', '0.0.0.0/0', true],
    ];
    for (const [a, b, want] of cases) {
      assert.equal(overlaps(cidr(a), cidr(b)), want, `${a} vs ${b}`);
      assert.equal(overlaps(cidr(b), cidr(a)), want, `${b} vs ${a}`);
    }
  });

  test('hostCount', () => {
    assert.equal(hostCount(cidr('10.0.0.0/24')), 254);
    assert.equal(hostCount(cidr('10.0.0.0/16')), 65534);
    assert.equal(hostCount(cidr('10.0.0.0/30')), 2);
    assert.equal(hostCount(cidr('10.0.0.0/31')), 2);
    assert.equal(hostCount(cidr('10.0.0.0/32')), 1);
  });
});
