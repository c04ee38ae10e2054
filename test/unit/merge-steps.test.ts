// mergeSteps: several networks' start plans as the one plan a batch start (`up`) applies.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeSteps } from '../../src/engine/engine.js';
import type { Step } from '../../src/engine/plan.js';

const plan = (n: string, tableMissing: boolean): Step[] => [
  { kind: 'sysctl', why: 'forwarding', key: 'net.ipv4.ip_forward', value: '1' },
  {
    kind: 'ip',
    why: `create ${n}`,
    lines: [`link add ${n} type bridge`, `link set dev ${n} up`],
    undo: [`link del dev ${n}`],
  },
  {
    kind: 'nft',
    why: `chains of ${n}`,
    script: `add chain inet kvmnet net_${n}_in\n`,
    undo: tableMissing ? 'delete table inet kvmnet\n' : `delete chain inet kvmnet net_${n}_in\n`,
  },
  { kind: 'write', why: 'conf', path: `/run/kvmnet/net/${n}/dnsmasq.conf`, content: 'x', mode: 0o644 },
  {
    kind: 'dnsmasq-start',
    why: 'dhcp',
    confFile: `/run/kvmnet/net/${n}/dnsmasq.conf`,
    pidFile: `/run/kvmnet/net/${n}/dnsmasq.pid`,
    leaseFile: `/var/lib/kvmnet/leases/${n}.leases`,
  },
];

test('ip lines in one batch in network order, their undo in reverse; one sysctl', () => {
  const steps = mergeSteps([plan('br1', false), plan('br2', false)], null);
  assert.deepEqual(
    steps.map((s) => s.kind),
    ['sysctl', 'ip', 'nft', 'write', 'write', 'dnsmasq-start', 'dnsmasq-start'],
  );
  const ip = steps.find((s) => s.kind === 'ip');
  assert.ok(ip?.kind === 'ip');
  assert.deepEqual(ip.lines, [
    'link add br1 type bridge',
    'link set dev br1 up',
    'link add br2 type bridge',
    'link set dev br2 up',
  ]);
  assert.deepEqual(ip.undo, ['link del dev br2', 'link del dev br1']);
});

test('nft scripts in one transaction with the bridge table step last; a shared undo appears once', () => {
  const bridge: Extract<Step, { kind: 'nft' }> = {
    kind: 'nft',
    why: 'table bridge kvmnet is missing',
    script: 'add table bridge kvmnet\n',
    undo: 'table bridge kvmnet\ndelete table bridge kvmnet\n',
  };
  const missing = mergeSteps([plan('br1', true), plan('br2', true)], bridge).find((s) => s.kind === 'nft');
  assert.ok(missing?.kind === 'nft');
  assert.equal(
    missing.script,
    'add chain inet kvmnet net_br1_in\nadd chain inet kvmnet net_br2_in\nadd table bridge kvmnet\n',
  );
  assert.equal(missing.undo, 'table bridge kvmnet\ndelete table bridge kvmnet\ndelete table inet kvmnet\n');
  const present = mergeSteps([plan('br1', false), plan('br2', false)], null).find((s) => s.kind === 'nft');
  assert.ok(present?.kind === 'nft');
  assert.equal(present.undo, 'delete chain inet kvmnet net_br2_in\ndelete chain inet kvmnet net_br1_in\n');
});
