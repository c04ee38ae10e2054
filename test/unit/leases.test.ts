// dnsmasq lease files: parsing and reading (src/engine/leases.ts).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseLeases, readLeases } from '../../src/engine/leases.js';

/** A lease file as dnsmasq writes it, with a few lines it never writes mixed in. */
const LEASE_FILE = [
  '1718000000 52:54:00:AB:CD:EF 192.168.122.45 web-01 01:52:54:00:ab:cd:ef',
  '0 52:54:00:11:22:33 192.168.122.7 * *',
  '',
  '1718003600 52:54:00:44:55:66 192.168.122.100 * 01:52:54:00:44:55:66',
  '   ',
  'garbage',
  '1718000000 52:54:00:77:88:99 192.168.122.8',
  'soon 52:54:00:aa:aa:aa 192.168.122.9 db *',
  '-5 52:54:00:aa:aa:ab 192.168.122.10 db *',
  '1700000000 52:54:00:De:aD:00 192.168.122.200 Cache-1 *\r',
  '',
].join('\n');

describe('parseLeases', () => {
  test('a realistic lease file', () => {
    assert.deepEqual(parseLeases(LEASE_FILE), [
      {
        mac: '52:54:00:ab:cd:ef',
        ip: '192.168.122.45',
        hostname: 'web-01',
        expiry: '2024-06-10T06:13:20.000Z',
      },
      { mac: '52:54:00:11:22:33', ip: '192.168.122.7', hostname: null, expiry: null },
      { mac: '52:54:00:44:55:66', ip: '192.168.122.100', hostname: null, expiry: '2024-06-10T07:13:20.000Z' },
      {
        mac: '52:54:00:de:ad:00',
        ip: '192.168.122.200',
        hostname: 'Cache-1',
        expiry: '2023-11-14T22:13:20.000Z',
      },
    ]);
  });

  test('hostname "*" is null, expiry 0 is null (infinite), the MAC is lower-cased', () => {
    assert.deepEqual(parseLeases('0 52:54:00:AA:BB:CC 10.10.0.5 *\n'), [
      { mac: '52:54:00:aa:bb:cc', ip: '10.10.0.5', hostname: null, expiry: null },
    ]);
  });

  test('a line without a client id (four fields) is a lease; the host name keeps its case', () => {
    assert.deepEqual(parseLeases('1 52:54:00:00:00:01 10.10.0.6 Kvm1'), [
      { mac: '52:54:00:00:00:01', ip: '10.10.0.6', hostname: 'Kvm1', expiry: '1970-01-01T00:00:01.000Z' },
    ]);
  });

  test('the expiry is seconds since the epoch, converted to ISO time', () => {
    const [l] = parseLeases('1718000000 52:54:00:00:00:01 10.10.0.6 a *');
    assert.equal(l?.expiry, '2024-06-10T06:13:20.000Z');
    assert.equal(l?.expiry, new Date(1718000000 * 1000).toISOString());
  });

  test('blank and malformed lines give no leases', () => {
    for (const text of [
      '',
      '\n\n',
      '   \n\t\n',
      'garbage',
      '1718000000 52:54:00:00:00:01 10.10.0.6',
      '1718000000',
      'x1718000000 52:54:00:00:00:01 10.10.0.6 a *',
      '1718000000.5 52:54:00:00:00:01 10.10.0.6 a *',
      '-1 52:54:00:00:00:01 10.10.0.6 a *',
      'duid 00:01:00:01:2d:5e:11:22:52:54:00:12:34:56',
    ]) {
      assert.deepEqual(parseLeases(text), [], `text ${JSON.stringify(text)}`);
    }
  });

  test('surrounding blanks and tabs between fields are tolerated', () => {
    assert.deepEqual(parseLeases('  1718000000\t52:54:00:00:00:01  10.10.0.6 a *  \n'), [
      { mac: '52:54:00:00:00:01', ip: '10.10.0.6', hostname: 'a', expiry: '2024-06-10T06:13:20.000Z' },
    ]);
  });
});

describe('readLeases', () => {
  test('a missing file gives no leases', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvmnet-leases-'));
    try {
      assert.deepEqual(await readLeases(join(dir, 'missing', 'default.leases')), []);
      assert.deepEqual(await readLeases(join(dir, 'default.leases')), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an existing file is read and parsed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvmnet-leases-'));
    try {
      const path = join(dir, 'default.leases');
      await writeFile(path, LEASE_FILE);
      assert.deepEqual(await readLeases(path), parseLeases(LEASE_FILE));
      assert.equal((await readLeases(path)).length, 4);
      await writeFile(path, '');
      assert.deepEqual(await readLeases(path), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parseLeases on hostile lines', () => {
  test('an expiry too large for a date, a bad MAC or a non-IPv4 address skip that line only', () => {
    const text = [
      '99999999999999999 52:54:00:00:00:01 10.0.0.1 a *',
      '1718000000 not-a-mac 10.0.0.2 b *',
      '1718000000 52:54:00:00:00:03 not-an-ip c *',
      '1718000000 52:54:00:00:00:04 10.0.0.4 d *',
    ].join('\n');
    assert.deepEqual(parseLeases(text), [
      { mac: '52:54:00:00:00:04', ip: '10.0.0.4', hostname: 'd', expiry: '2024-06-10T06:13:20.000Z' },
    ]);
  });
});
