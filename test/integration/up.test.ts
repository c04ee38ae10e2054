// Issue 2: `up` on a host that already uses 192.168.122.0/24 picks the next free 192.168.N.0/24
// and says so; the bridge name skips an interface that already exists.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

describe('up on a host that already uses the stock subnet', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('up');
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'virbr0', 'type', 'veth', 'peer', 'name', 'virbr0p']);
    await must('ip', ['-n', lab.hostNs, 'addr', 'add', '192.168.122.5/24', 'dev', 'virbr0']);
    await must('ip', ['-n', lab.hostNs, 'route', 'add', '192.168.123.0/24', 'via', '192.168.100.254']);
    await lab.acceptHostChanges();
  });
  after(async () => {
    await lab.destroy();
  });

  test('picks 192.168.124.0/24 and virbr1, and says why', async () => {
    const r = await lab.kvmnet('up');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^note: 192\.168\.122\.0\/24 is already in use on this host \(address 192\.168\.122\.5\/24 on virbr0\); the default network uses 192\.168\.124\.0\/24 instead$/m,
    );
    const list = await lab.kvmnetJson<
      Array<{ name: string; subnet: string; bridge: string; gateway: string; state: string }>
    >('net', 'list');
    assert.deepEqual(
      list.map((n) => [n.name, n.subnet, n.gateway, n.bridge, n.state]),
      [['default', '192.168.124.0/24', '192.168.124.1', 'virbr1', 'active']],
    );
    const addr = await must('ip', ['-n', lab.hostNs, '-4', '-o', 'addr', 'show', 'virbr1']);
    assert.match(addr, /inet 192\.168\.124\.1\/24/);
    // The pre-existing virbr0 (someone else's) is untouched.
    const other = await must('ip', ['-n', lab.hostNs, '-4', '-o', 'addr', 'show', 'virbr0']);
    assert.match(other, /inet 192\.168\.122\.5\/24/);
    await lab.kvmnetOk('down');
  });
});

// `up` starts its networks as one batch (one ip batch, one nft transaction, dnsmasqs side by side).
// When one of them cannot start, the batch is rolled back and the networks start one by one: the
// others run, and the one that failed names itself.
describe('up of several networks', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('upm');
  });
  after(async () => {
    await lab.destroy();
  });

  const nets: Array<[string, string, string]> = [
    ['m1', '10.81.0.0/24', 'kvm1'],
    ['m2', '10.82.0.0/24', 'kvm2'],
    ['m3', '10.83.0.0/24', 'kvm3'],
  ];

  /** Each network's name and state, as `net list` shows them (name order). */
  const states = async (): Promise<string[][]> =>
    (await lab.kvmnetJson<Array<{ name: string; state: string }>>('net', 'list')).map((n) => [
      n.name,
      n.state,
    ]);

  test('one failing network: the batch is undone, the others start one by one', async () => {
    for (const [name, subnet, bridge] of nets)
      await lab.kvmnetOk('net', 'define', name, '--subnet', subnet, '--bridge', bridge, '--autostart');
    const squatter = await lab.squatDns('10.82.0.1');
    const r = await lab.kvmnet('up');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /starting 4 networks together failed \(.*Address already in use\); starting them one by one/,
    );
    assert.match(
      r.stderr,
      /^error: start of network "m2" failed: dnsmasq did not start: .*10\.82\.0\.1.*Address already in use/m,
    );
    assert.deepEqual(
      await states(),
      [
        ['default', 'active'],
        ['m1', 'active'],
        ['m2', 'inactive'],
        ['m3', 'inactive'],
      ],
      'one by one in name order: m3 comes after the failing m2',
    );
    assert.doesNotMatch(await must('ip', ['-n', lab.hostNs, '-br', 'link']), /kvm2/);
    await squatter.stop();
    await lab.kvmnetOk('down');
  });

  test('all start together, and are checked against the kernel afterwards', async () => {
    const r = await lab.kvmnet('up');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /one by one/);
    assert.deepEqual(await states(), [
      ['default', 'active'],
      ['m1', 'active'],
      ['m2', 'active'],
      ['m3', 'active'],
    ]);
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    for (const [name] of nets) assert.match(nft, new RegExp(`chain net_${name}_nat `));
    const check = await lab.kvmnetJson<{ networks: string[]; findings: unknown[] }>('check');
    assert.deepEqual(check, { networks: ['default', 'm1', 'm2', 'm3'], findings: [] }, 'nothing drifted');
  });

  test('down stops them together: no bridge, rule or dnsmasq is left', async () => {
    const r = await lab.kvmnet('down');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /one by one/);
    assert.deepEqual(await states(), [
      ['default', 'inactive'],
      ['m1', 'inactive'],
      ['m2', 'inactive'],
      ['m3', 'inactive'],
    ]);
    assert.doesNotMatch(await must('ip', ['-n', lab.hostNs, '-br', 'link']), /virbr0|kvm[123]/);
    const tables = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'tables']);
    assert.doesNotMatch(tables, /kvmnet/);
    const procs = await must('ip', ['netns', 'pids', lab.hostNs]);
    assert.equal(procs.trim(), '', 'no dnsmasq (or any process) left in the namespace');
  });
});
