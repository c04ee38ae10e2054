// Issue 9 part 1: `net stop` of a simply running network plans from its applied record and the
// stored state (Engine.planStopFromRecord), without listing links or nft tables: its nft
// transaction, its bridge's deletion and dnsmasq's stop are their own checks. The host it leaves
// must be the host before the network started, the other networks untouched; what is not as
// applied makes a step fail, and the observed stop finishes it (noted).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab, type Snapshot } from '../lib/lab.js';
import { must } from '../lib/proc.js';

interface OpJson {
  notes: string[];
  plans: Array<{ network: string; steps: Array<{ kind: string; why: string; script?: string }> }>;
}

/** What a start and a stop may leave changed: timestamps, the lease file dnsmasq keeps, link counters. */
function kernel(s: Snapshot): unknown {
  return { links: s.links, addrs: s.addrs, routes: s.routes, nft: s.nft, pids: s.pids };
}

const FALLBACK = /observing the host to finish it/;

describe('net stop from the applied record', () => {
  let lab: Lab;
  /** The host with `default` defined (ports, forwards) but stopped, `n2` running with a port. */
  let stopped: Snapshot;

  before(async () => {
    lab = await Lab.create('sdelta');
    await lab.kvmnetOk('net', 'define', 'default', '--subnet', '192.168.122.0/24');
    await lab.kvmnetOk('net', 'define', 'n2', '--subnet', '10.77.0.0/24');
    await lab.kvmnetOk('net', 'start', 'n2');
    const port = (net: string, vm: string, mac: string, ...more: string[]) =>
      lab.kvmnetOk('port', 'add', net, '--vm', vm, '--mac', `52:54:00:00:e0:${mac}`, ...more);
    await port('n2', 'other', '01');
    await port('default', 'web', '02', '--ip', '192.168.122.10');
    await port('default', 'c1', '03');
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'web:80');
    await lab.kvmnetOk('forward', 'add', 'default', 'udp', '5353', '192.168.122.11:53');
    stopped = await lab.snapshot();
  });
  after(async () => {
    await lab.destroy();
  });

  test('a network with ports and forwards beside another: nothing observed, the host as before its start', async () => {
    await lab.kvmnetOk('net', 'start', 'default');
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.match(nft, /chain net_virbr0 /, 'its ports are checked');
    assert.match(nft, /tcp \. 8080 : 192\.168\.122\.10 \. 80/, 'its forward is in the map');
    const r = await lab.kvmnet('net', 'stop', 'default', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, FALLBACK);
    const steps = (JSON.parse(r.stdout) as OpJson).plans.flatMap((p) => p.steps);
    const tx = steps.find((s) => s.kind === 'nft');
    assert.match(tx?.why ?? '', /remove the network's chains and elements from table inet kvmnet/);
    // The forwards' elements come from the stored forwards (the record does not list them).
    assert.match(tx?.script ?? '', /delete element inet kvmnet fwd_any \{ tcp \. 8080 \}/);
    assert.match(tx?.script ?? '', /delete element inet kvmnet fwd_any \{ udp \. 5353 \}/);
    assert.match(tx?.script ?? '', /delete chain bridge kvmnet net_virbr0/);
    assert.deepEqual(kernel(await lab.snapshot()), kernel(stopped));
    const chk = await lab.kvmnet('check');
    assert.equal(chk.code, 0, chk.stdout + chk.stderr);
  });

  test('an element gone by hand: the transaction fails, the observed stop finishes, noted', async () => {
    await lab.kvmnetOk('net', 'start', 'default');
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'delete element inet kvmnet fwd_any { tcp . 8080 }',
    ]);
    const r = await lab.kvmnet('net', 'stop', 'default');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /stop of network "default": nft -f - failed: .*fwd_any.*; observing the host to finish it/,
    );
    assert.deepEqual(kernel(await lab.snapshot()), kernel(stopped));
  });

  test('a link of another kind holding the bridge name is not deleted', async () => {
    await lab.kvmnetOk('net', 'start', 'default');
    await must('ip', ['-n', lab.hostNs, 'link', 'del', 'virbr0']);
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'virbr0', 'type', 'veth', 'peer', 'name', 'sdpeer']);
    try {
      const r = await lab.kvmnet('net', 'stop', 'default');
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /stop of network "default": ip -batch - failed: .*; observing the host to finish it/,
      );
      const link = await lab.exec(lab.hostNs, ['ip', '-d', 'link', 'show', 'virbr0']);
      assert.equal(link.code, 0, 'the veth is still there');
      assert.match(link.stdout, /veth/);
    } finally {
      await must('ip', ['-n', lab.hostNs, 'link', 'del', 'virbr0']);
    }
    assert.deepEqual(kernel(await lab.snapshot()), kernel(stopped));
  });

  test('the last network with rules takes both tables with it', async () => {
    const r = await lab.kvmnet('net', 'stop', 'n2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, FALLBACK);
    const tx = (JSON.parse(r.stdout) as OpJson).plans.flatMap((p) => p.steps).find((s) => s.kind === 'nft');
    assert.match(tx?.script ?? '', /^delete table inet kvmnet\n/);
    assert.match(tx?.script ?? '', /delete table bridge kvmnet/);
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.doesNotMatch(nft, /table (inet|bridge) kvmnet/);
    const link = await lab.exec(lab.hostNs, ['ip', 'link', 'show', 'virbr1']);
    assert.notEqual(link.code, 0, 'its bridge is gone');
  });
});
