// Issue 2 acceptance 7: `apply -f` of an exported file is a no-op; `apply --dry-run` of a changed
// file prints exactly the changes; apply then makes host and definitions match the file.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

describe('apply and export', () => {
  let lab: Lab;
  let exported = '';

  before(async () => {
    lab = await Lab.create('apply');
    await lab.kvmnetOk('up');
    await lab.kvmnetOk(
      'net',
      'define',
      'lab',
      '--subnet',
      '10.10.0.0/24',
      '--bridge',
      'virbr7',
      '--domain',
      'lab',
    );
    await lab.kvmnetOk('net', 'start', 'lab');
    await lab.kvmnetOk('net', 'define', 'iso', '--mode', 'isolated', '--subnet', '10.20.0.0/24', '--no-dhcp');
  });
  after(async () => {
    await lab.destroy();
  });

  test('export writes every definition as YAML', async () => {
    exported = await lab.kvmnetOk('export');
    assert.match(exported, /^version: 1$/m);
    assert.match(exported, /^ {2}default:\n {4}mode: nat\n {4}bridge: virbr0\n/m);
    assert.match(exported, /^ {2}iso:\n(?: {4}.*\n)*? {4}dhcp: false$/m);
    assert.match(exported, /^ {4}domain: lab$/m);
    const viaFile = join(lab.dir, 'out.yaml');
    await lab.kvmnetOk('export', '-o', viaFile);
    assert.equal(await readFile(viaFile, 'utf8'), exported);
  });

  test('apply -f of the exported file is a no-op', async () => {
    const f = join(lab.dir, 'same.yaml');
    await writeFile(f, exported);
    const before = await lab.snapshot();
    const r = await lab.kvmnetJson<{ definitions: unknown[]; plans: unknown[] }>('apply', '-f', f);
    assert.deepEqual(r, { dryRun: false, definitions: [], plans: [], notes: [] });
    assert.equal(await lab.kvmnetOk('apply', '-f', f), 'no changes\n');
    const after = await lab.snapshot();
    delete before.files[`/same.yaml`];
    delete after.files[`/same.yaml`];
    assert.deepEqual(after, before);
  });

  test('apply --dry-run of a changed file prints exactly the changes', async () => {
    const changed = exported
      .replace(/(lab:\n(?: {4}.*\n)*? {4}dhcp:\n {6}start: )10\.10\.0\.2/, '$110.10.0.100')
      .replace(/(\n {2}iso:\n(?: {4}.*\n)+)/, '\n')
      .replace(
        'forwards: []\n',
        '  rt:\n    mode: routed\n    subnet: 10.30.0.0/24\n    bridge: virbr30\nforwards: []\n',
      );
    assert.notEqual(changed, exported);
    const f = join(lab.dir, 'changed.yaml');
    await writeFile(f, changed);
    const before = await lab.snapshot();
    const out = await lab.kvmnetOk('apply', '-f', f, '--dry-run');
    const defLines = out.split('\n').filter((l) => l.startsWith('network '));
    assert.deepEqual(defLines, [
      'network lab: would update (dhcp.start 10.10.0.2 -> 10.10.0.100)',
      'network rt: would define (mode routed, bridge virbr30, subnet 10.30.0.0/24 gateway 10.30.0.1, dhcp 10.30.0.2-10.30.0.254, autostart false)',
      'network iso: would undefine',
    ]);
    // The only host change: lab's dnsmasq gets the new range (lab runs; iso and rt do not).
    const plans = out.split('\n').filter((l) => l.startsWith('# network '));
    assert.deepEqual(plans, ['# network lab: update']);
    assert.match(out, /^dhcp-range=10\.10\.0\.100,10\.10\.0\.254,255\.255\.255\.0$/m);
    assert.match(out, /^# dnsmasq-stop: its configuration changed$/m);
    assert.doesNotMatch(out, /^ip /m, 'the bridge is left alone');
    assert.doesNotMatch(out, /^nft /m, 'the rules are left alone');
    const after = await lab.snapshot();
    delete after.files['/changed.yaml'];
    delete before.files['/changed.yaml'];
    assert.deepEqual(after, before, 'dry-run changed nothing');

    await lab.kvmnetOk('apply', '-f', f);
    const conf = await readFile(join(lab.runDir, 'net/lab/dnsmasq.conf'), 'utf8');
    assert.match(conf, /^dhcp-range=10\.10\.0\.100,10\.10\.0\.254,255\.255\.255\.0$/m);
    const list = await lab.kvmnetJson<Array<{ name: string; state: string }>>('net', 'list');
    assert.deepEqual(
      list.map((n) => [n.name, n.state]),
      [
        ['default', 'active'],
        ['lab', 'active'],
        ['rt', 'inactive'],
      ],
    );
    const g = await lab.addGuest('g1', 'virbr7');
    const lease = await lab.dhcp(g, 'g1');
    const last = Number(lease.ip.split('.')[3]);
    assert.ok(last >= 100, `lease ${lease.ip} comes from the new range`);
    // And the file now describes the host exactly: applying it again changes nothing.
    assert.equal(await lab.kvmnetOk('apply', '-f', f), 'no changes\n');
  });

  test('forwards are part of the file: apply adds and removes them on the running network', async () => {
    await lab.kvmnetOk('port', 'add', 'lab', '--vm', 'web', '--ip', '10.10.0.50');
    await lab.kvmnetOk('forward', 'add', 'lab', 'tcp', '8080', 'web:80');
    const text = await lab.kvmnetOk('export');
    assert.match(text, /^forwards:\n {2}- network: lab\n {4}proto: tcp\n {4}port: 8080\n {4}to: web:80\n/m);
    const f = join(lab.dir, 'fwd.yaml');
    await writeFile(f, text);
    assert.equal(await lab.kvmnetOk('apply', '-f', f), 'no changes\n');
    await writeFile(
      f,
      text.replace(
        /forwards:\n[\s\S]*$/,
        'forwards:\n  - network: lab\n    proto: udp\n    port: 5353\n    to: web:53\n',
      ),
    );
    const dry = await lab.kvmnetOk('apply', '-f', f, '--dry-run');
    assert.deepEqual(
      dry.split('\n').filter((l) => l.startsWith('forward ')),
      [
        'forward udp/5353 of lab: would define (udp *:5353 -> web:53 (10.10.0.50:53))',
        'forward tcp/8080 of lab: would undefine',
      ],
    );
    assert.match(dry, /^delete element inet kvmnet fwd_any \{ tcp \. 8080 \}$/m);
    assert.match(dry, /^add element inet kvmnet fwd_any \{ udp \. 5353 : 10\.10\.0\.50 \. 53 \}$/m);
    await lab.kvmnetOk('apply', '-f', f);
    const map = await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'list',
      'map',
      'inet',
      'kvmnet',
      'fwd_any',
    ]);
    assert.match(map, /udp \. 5353 : 10\.10\.0\.50 \. 53/);
    assert.doesNotMatch(map, /tcp \. 8080/);
  });
});
