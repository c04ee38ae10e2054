// Issue 9 part 2: a port added to or removed from a running network is a delta (Engine.planPortDelta):
// its tap, its anti-spoofing elements, the reservation files and a SIGHUP, nothing else observed or
// planned. The host it leaves must be what a full reconcile wants: `check` finds no drift, a full
// `net start` has nothing to do and changes nothing. What looks drifted falls back to the full
// reconcile (noted) and ends in the same state.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab, type Snapshot } from '../lib/lab.js';
import { must } from '../lib/proc.js';

interface StepJson {
  kind: string;
  why: string;
}
interface OpJson {
  dryRun: boolean;
  notes: string[];
  plans: Array<{ network: string; steps: StepJson[] }>;
  port: { name: string; id: string };
}

/** The snapshot without what a reconcile may rewrite unchanged (the applied record's timestamp). */
function stable(s: Snapshot): unknown {
  const files: Record<string, string> = {};
  for (const [path, content] of Object.entries(s.files))
    files[path] = content.replace(/"updatedAt":\s*"[^"]*"/g, '"updatedAt":"T"');
  return { ...s, files };
}

/** The change went through the delta: its plan names the port's elements, and nothing fell back. */
function assertDelta(r: { stdout: string; stderr: string }, what: string): OpJson {
  assert.doesNotMatch(r.stderr, /reconciling network/, `${what}: no fallback`);
  const op = JSON.parse(r.stdout) as OpJson;
  const steps = op.plans.flatMap((p) => p.steps);
  assert.ok(
    steps.some((s) => s.kind === 'nft' && /^anti-spoofing elements of port /.test(s.why)),
    `${what}: a delta plan: ${JSON.stringify(steps)}`,
  );
  return op;
}

describe('port delta on a running network', () => {
  let lab: Lab;

  /** No drift, and a full start again neither plans nor changes anything. */
  async function assertFullIsNoop(what: string): Promise<void> {
    const chk = await lab.kvmnet('check');
    assert.equal(chk.code, 0, `${what}: check: ${chk.stdout}${chk.stderr}`);
    const dry = await lab.kvmnetOk('net', 'start', 'default', '--dry-run');
    assert.match(
      dry,
      /^# network default: update - nothing to do$/m,
      `${what}: a full start plans nothing: ${dry}`,
    );
    const snap = await lab.snapshot();
    const out = await lab.kvmnetOk('net', 'start', 'default');
    assert.match(out, /nothing to do/, `${what}: net start: ${out}`);
    assert.deepEqual(stable(await lab.snapshot()), stable(snap), `${what}: the full start changed nothing`);
  }

  const add = (vm: string, mac: string, ...more: string[]) =>
    lab.kvmnet('port', 'add', 'default', '--vm', vm, '--mac', mac, ...more, '--json');

  before(async () => {
    lab = await Lab.create('pdelta');
    await lab.kvmnetOk('up');
    // The network's first checked port makes its chain: a full reconcile.
    const first = await add('web', '52:54:00:00:d0:01', '--ip', '192.168.122.10');
    assert.equal(first.code, 0, first.stderr);
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'web:80');
  });
  after(async () => {
    await lab.destroy();
  });

  test('a port with a reservation: added and removed as a delta, as a full reconcile wants it', async () => {
    const r = await add('db', '52:54:00:00:d0:02', '--ip', '192.168.122.20');
    assert.equal(r.code, 0, r.stderr);
    const op = assertDelta(r, 'add');
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'bridge', 'kvmnet']);
    assert.match(nft, new RegExp(`"${op.port.name}" : jump net_virbr0`));
    assert.match(nft, /192\.168\.122\.20/);
    await assertFullIsNoop('after a delta add');
    const del = await lab.kvmnet('port', 'del', 'db', '--json');
    assert.equal(del.code, 0, del.stderr);
    assertDelta(del, 'del');
    const link = await lab.exec(lab.hostNs, ['ip', 'link', 'show', op.port.name]);
    assert.notEqual(link.code, 0, 'the tap is gone');
    await assertFullIsNoop('after a delta del');
  });

  test('ports without a reservation, isolated or unchecked: deltas too', async () => {
    for (const [vm, mac, ...more] of [
      ['c1', '52:54:00:00:d0:03'],
      ['c2', '52:54:00:00:d0:04', '--isolated'],
      ['c3', '52:54:00:00:d0:05', '--no-spoof-check', '--ip', '192.168.122.30'],
    ] as string[][]) {
      const r = await add(vm ?? '', mac ?? '', ...more);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /reconciling network/);
      await assertFullIsNoop(`after adding ${vm}`);
    }
    for (const vm of ['c1', 'c2', 'c3']) {
      const r = await lab.kvmnet('port', 'del', vm);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /reconciling network/);
    }
    await assertFullIsNoop('after removing them');
  });

  test('--dry-run shows the delta and changes nothing', async () => {
    const snap = await lab.snapshot();
    const r = await lab.kvmnet(
      'port',
      'add',
      'default',
      '--vm',
      'dry',
      '--mac',
      '52:54:00:00:d0:06',
      '--dry-run',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /tuntap add dev vnet\d+ mode tap/);
    assert.match(r.stdout, /add element bridge kvmnet port_mac/);
    assert.deepEqual(stable(await lab.snapshot()), stable(snap));
  });

  test('drift of what a delta touches falls back to the full reconcile', async () => {
    // A port's element deleted by hand: its removal cannot be a delta.
    const r = await add('d1', '52:54:00:00:d0:07', '--ip', '192.168.122.40');
    assert.equal(r.code, 0, r.stderr);
    const tap = (JSON.parse(r.stdout) as OpJson).port.name;
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      `delete element bridge kvmnet port_ip { "${tap}" . 192.168.122.40 }`,
    ]);
    const del = await lab.kvmnet('port', 'del', 'd1');
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stderr, /reconciling network "default" in full/);
    await assertFullIsNoop('after a fallback del');
    // A link holding the name the next tap would get (a libvirt guest's vnetN, say): no drift, the
    // full path picks another name, without a note.
    const next = tap;
    await must('ip', ['-n', lab.hostNs, 'tuntap', 'add', 'dev', next, 'mode', 'tap']);
    try {
      const r2 = await add('d2', '52:54:00:00:d0:08');
      assert.equal(r2.code, 0, r2.stderr);
      assert.doesNotMatch(r2.stderr, /reconciling/);
      assert.notEqual((JSON.parse(r2.stdout) as OpJson).port.name, next);
      await assertFullIsNoop('after a fallback add');
      await lab.kvmnetOk('port', 'del', 'd2');
    } finally {
      await must('ip', ['-n', lab.hostNs, 'link', 'del', next]);
    }
  });

  test('a second port of a VM that forwards reach by name takes the full path', async () => {
    const r = await add('web', '52:54:00:00:d0:09');
    assert.equal(r.code, 0, r.stderr);
    const steps = (JSON.parse(r.stdout) as OpJson).plans.flatMap((p) => p.steps);
    assert.ok(!steps.some((s) => /^anti-spoofing elements of port /.test(s.why)), JSON.stringify(steps));
    await assertFullIsNoop('after the full add');
    await lab.kvmnetOk('port', 'del', 'web/net1');
    await assertFullIsNoop('after the full del');
  });
});

// A libvirt port (libvirt makes its tap, kvmnet learns its name later) on a network with no checked
// port: no table bridge kvmnet before or after, so its reservation is the hosts files and a SIGHUP,
// without a process run: this is `kvmnet libvirt interface` before a domain's first start.
describe('a libvirt reservation on a network without checked ports', () => {
  let lab: Lab;
  let log: string;
  let env: NodeJS.ProcessEnv;
  /** What kvmnet ran (the lab runs the CLI itself with `ip netns exec`, from the same PATH). */
  const runs = async (): Promise<string[]> =>
    (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('ip netns exec '));

  before(async () => {
    lab = await Lab.create('pdlv');
    await lab.kvmnetOk('up');
    // ip and nft on PATH log each run, then run the real ones.
    const bin = join(lab.dir, 'logged');
    log = join(lab.dir, 'runs.log');
    await mkdir(bin);
    for (const tool of ['ip', 'nft']) {
      const real = (await must('sh', ['-c', `command -v ${tool}`])).trim();
      await writeFile(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${log}\nexec ${real} "$@"\n`, {
        mode: 0o755,
      });
    }
    env = { PATH: `${bin}:${process.env.PATH ?? ''}` };
  });
  after(async () => {
    await lab.destroy();
  });

  test('added and removed without an ip or nft process, as a full reconcile wants it', async () => {
    await writeFile(log, '');
    const r = await lab.kvmnetEnv(
      env,
      'libvirt',
      'interface',
      'default',
      '--vm',
      'lv1',
      '--mac',
      '52:54:00:00:d1:01',
      '--ip',
      '192.168.122.70',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /reconciling network/);
    assert.deepEqual(await runs(), [], 'no ip or nft run for the reservation');
    const hosts = await readFile(join(lab.runDir, 'net/default/dhcp-hosts'), 'utf8');
    assert.match(hosts, /52:54:00:00:d1:01,192\.168\.122\.70/);
    const chk = await lab.kvmnet('check');
    assert.equal(chk.code, 0, `check: ${chk.stdout}${chk.stderr}`);
    assert.match(await lab.kvmnetOk('net', 'start', 'default', '--dry-run'), /nothing to do/);

    await writeFile(log, '');
    const del = await lab.kvmnetEnv(env, 'port', 'del', 'lv1');
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await runs(), [], 'no ip or nft run for its removal');
    assert.doesNotMatch(await readFile(join(lab.runDir, 'net/default/dhcp-hosts'), 'utf8'), /d1:01/);
    assert.match(await lab.kvmnetOk('net', 'start', 'default', '--dry-run'), /nothing to do/);
  });
});
