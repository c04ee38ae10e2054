// Issue 8.1: drift. For each fault of test/lib/cases/drift.ts, injected with the real tools in the
// lab's host namespace: `check` exits 1 and names it, `repair` restores it, `check` exits 0, the
// host equals its snapshot from before the fault (pids and ifindexes of re-made objects aside),
// and the guest's tap keeps its ifindex unless the fault deleted it. One lab per network kind,
// the two labs in parallel; plus the daemon repairing by itself.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Daemon } from '../lib/daemon.js';
import { Lab, type Snapshot } from '../lib/lab.js';
import { must } from '../lib/proc.js';
import { BRIDGED_DRIFT_CASES, NAT_DRIFT_CASES, type DriftCase } from '../lib/cases/drift.js';

interface FindingJson {
  network: string;
  kind: string;
  object: string;
  expected: string;
  actual: string;
  fix: string;
}

/** The snapshot without what a repair may legitimately renumber: ifindexes, link order, pids. */
function stable(s: Snapshot): unknown {
  const links = (s.links as Array<Record<string, unknown>>)
    .map((l) => {
      const rest = { ...l };
      delete rest.ifindex;
      return rest;
    })
    .sort((a, b) => String(a.ifname).localeCompare(String(b.ifname)));
  const files: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.files)) {
    files[k] = k.endsWith('.pid')
      ? 'PID'
      : v.replace(/"pid":\s*\d+/g, '"pid":0').replace(/"updatedAt":\s*"[^"]*"/g, '"updatedAt":""');
  }
  return { ...s, links, pids: undefined, files };
}

async function ifindex(lab: Lab, dev: string): Promise<number | undefined> {
  const r = await lab.exec(lab.hostNs, ['ip', '-json', 'link', 'show', dev]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Array<{ ifindex: number }>)[0]?.ifindex;
}

interface Subject {
  lab: Lab;
  network: string;
  bridge: string;
  tap: string;
  uplink: string;
}

async function fill(s: Subject, arg: string): Promise<string> {
  let out = arg.replaceAll('BR', s.bridge).replaceAll('TAP', s.tap).replaceAll('UPLINK', s.uplink);
  if (out.includes('PID')) {
    const pid = (await readFile(join(s.lab.runDir, 'net', s.network, 'dnsmasq.pid'), 'utf8')).trim();
    out = out.replaceAll('PID', pid);
  }
  return out.replaceAll('CONF', join(s.lab.runDir, 'net', s.network, 'dnsmasq.conf'));
}

async function runCase(s: Subject, c: DriftCase, full: boolean): Promise<void> {
  const { lab } = s;
  const before = await lab.snapshot();
  const tapIndex = await ifindex(lab, s.tap);
  for (const cmd of c.fault) {
    const argv = await Promise.all(cmd.map((a) => fill(s, a)));
    await must('ip', ['netns', 'exec', lab.hostNs, ...argv]);
  }
  const chk = await lab.kvmnet('check', '--json');
  assert.equal(chk.code, 1, `check after "${c.name}" exits 1: ${chk.stdout}${chk.stderr}`);
  const findings = (JSON.parse(chk.stdout) as { findings: FindingJson[] }).findings;
  for (const k of c.kinds)
    assert.ok(
      findings.some((f) => f.kind === k && f.network === s.network),
      `check after "${c.name}" names ${k}: ${JSON.stringify(findings)}`,
    );
  if (full) {
    // Once per lab: the human lines, the dry run (which changes nothing) and the JSON of repair.
    const human = await lab.kvmnet('check');
    assert.equal(human.code, 1);
    for (const k of c.kinds) assert.match(human.stdout, new RegExp(`^${s.network}: ${k} .*repair: `, 'm'));
    const dry = await lab.kvmnet('repair', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`# network ${s.network}`));
    assert.equal((await lab.kvmnet('check')).code, 1, 'the dry run changed nothing');
  }
  const rep = await lab.kvmnet('repair', '--json');
  assert.equal(rep.code, 0, `repair after "${c.name}": ${rep.stdout}${rep.stderr}`);
  const repaired = JSON.parse(rep.stdout) as { findings: FindingJson[]; remaining: FindingJson[] };
  assert.deepEqual(repaired.remaining, []);
  assert.deepEqual(repaired.findings, findings, 'repair restored what check listed');
  for (const cmd of c.cleanup ?? []) await must('ip', ['netns', 'exec', lab.hostNs, ...cmd]);
  const again = await lab.kvmnet('check');
  assert.equal(again.code, 0, `check after repairing "${c.name}": ${again.stdout}${again.stderr}`);
  assert.equal(again.stdout, `no drift (1 running network checked)\n`);
  const afterSnap = await lab.snapshot();
  assert.deepEqual(stable(afterSnap), stable(before), `host after repairing "${c.name}" as before`);
  if (c.tapKept) assert.equal(await ifindex(lab, s.tap), tapIndex, `tap ${s.tap} kept its ifindex`);
  if (full) {
    // The same repair again changes nothing.
    const noop = await lab.kvmnet('repair');
    assert.equal(noop.stdout, 'no drift, nothing to do\n');
  }
}

async function tapOf(lab: Lab, vm: string): Promise<string> {
  const ports = await lab.kvmnetJson<Array<{ vm: string; name: string }>>('port', 'list');
  const p = ports.find((x) => x.vm === vm);
  assert.ok(p, `port of ${vm}`);
  return p.name;
}

describe('drift: check and repair', { concurrency: 2 }, () => {
  describe('nat network with a port and a forward', { concurrency: 1 }, () => {
    let s: Subject;
    before(async () => {
      const lab = await Lab.create('drn');
      s = { lab, network: 'default', bridge: 'virbr0', tap: '', uplink: 'eth1' };
      await lab.kvmnetOk('up');
      await lab.kvmnetOk(
        'port',
        'add',
        'default',
        '--vm',
        'web',
        '--mac',
        '52:54:00:00:00:10',
        '--ip',
        '192.168.122.10',
      );
      await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'web:80');
      s.tap = await tapOf(lab, 'web');
      const clean = await lab.kvmnet('check');
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    });
    after(async () => {
      await s?.lab.destroy();
    });

    for (const [i, c] of NAT_DRIFT_CASES.entries()) test(c.name, () => runCase(s, c, i === 0));

    test('an unknown network is bad input (exit 2), nothing checked', async () => {
      const r = await s.lab.kvmnet('check', 'nosuch');
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^error: network "nosuch" is not defined\n/);
      assert.equal((await s.lab.kvmnet('repair', 'nosuch')).code, 2);
    });

    test('the daemon repairs by itself and says so on the event stream', async () => {
      const d = await Daemon.start(s.lab, ['--no-listen', '--repair-interval', '1']);
      const ev = d.events();
      try {
        await must('ip', ['netns', 'exec', s.lab.hostNs, 'ip', 'link', 'set', s.tap, 'nomaster']);
        const e = await ev.waitFor((x) => x.event === 'repair', 0, 10_000);
        const data = e.data as { findings: FindingJson[] };
        assert.ok(
          data.findings.some((f) => f.kind === 'tap-unplugged'),
          JSON.stringify(data),
        );
        assert.equal((await s.lab.kvmnet('check')).code, 0);
        const api = await d.ok<{ findings: FindingJson[] }>('/api/check');
        assert.deepEqual(api.findings, []);
        await must('ip', ['netns', 'exec', s.lab.hostNs, 'ip', 'link', 'set', s.tap, 'down']);
      } finally {
        ev.close();
        await d.stop();
      }
    });

    test('POST /api/repair restores, GET /api/check lists', async () => {
      const d = await Daemon.start(s.lab, ['--no-listen', '--repair-interval', '0']);
      try {
        // Left from the previous test with the interval at 0: nobody repairs but the request.
        await must('ip', ['netns', 'exec', s.lab.hostNs, 'ip', 'link', 'set', s.tap, 'down']);
        const chk = await d.ok<{ findings: FindingJson[] }>('/api/check');
        assert.deepEqual(
          chk.findings.map((f) => f.kind),
          ['tap-down'],
        );
        const rep = await d.ok<{ remaining: FindingJson[] }>('/api/repair', { method: 'POST' });
        assert.deepEqual(rep.remaining, []);
        assert.equal((await s.lab.kvmnet('check')).code, 0);
      } finally {
        await d.stop();
      }
    });
  });

  describe('bridged network with a port', { concurrency: 1 }, () => {
    let s: Subject;
    before(async () => {
      const lab = await Lab.create('drb');
      s = { lab, network: 'lan', bridge: 'virbr1', tap: '', uplink: 'eth1' };
      await lab.kvmnetOk(
        'net',
        'define',
        'lan',
        '--mode',
        'bridge',
        '--uplink',
        'eth1',
        '--bridge',
        'virbr1',
      );
      await lab.kvmnetOk('net', 'start', 'lan', '--confirm-timeout', '5');
      await lab.kvmnetOk('port', 'add', 'lan', '--vm', 'g1', '--mac', '52:54:00:00:01:10');
      s.tap = await tapOf(lab, 'g1');
      const clean = await lab.kvmnet('check');
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    });
    after(async () => {
      await s?.lab.destroy();
    });

    for (const [i, c] of BRIDGED_DRIFT_CASES.entries()) test(c.name, () => runCase(s, c, i === 0));
  });
});
