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
