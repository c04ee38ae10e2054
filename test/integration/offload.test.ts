// Issue 9: flow offload of nat networks in a namespace lab. kvmnet probes the kernel for nftables
// flowtables; without them (this machine: no nf_flow_table) the network runs without offload and
// says so in one note, on stderr and in --json "notes", and `check` finds no drift. With them, the
// network's table holds its flowtable. `--no-offload` is stored, shown and exported.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

describe('flow offload', () => {
  let lab: Lab;
  let flowtables: boolean;

  before(async () => {
    lab = await Lab.create('offload');
    await lab.server(lab.lanNs, 8080, 'lan');
    // The same probe kvmnet makes (check mode: nothing is applied).
    flowtables =
      spawnSync('ip', ['netns', 'exec', lab.hostNs, 'nft', '-c', '-f', '-'], {
        input: 'table inet probe {\n  flowtable f { hook ingress priority 0; devices = { "lo" }; }\n}\n',
      }).status === 0;
  });
  after(async () => {
    await lab.destroy();
  });

  /** The note lines of a command's stderr (progress lines like "kvmnet: starting dnsmasq" aside). */
  const notes = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('note:'));
  const table = (): Promise<string> =>
    must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);

  test('a nat network offloads by default, or runs without it with a note; guests reach the LAN; no drift', async () => {
    await lab.kvmnetOk('net', 'define', 'on', '--subnet', '10.50.0.0/24', '--bridge', 'virbr50');
    const note =
      'note: this kernel has no nftables flowtables (nf_flow_table); network "on" runs without flow offload';
    const r = await lab.kvmnet('net', 'start', 'on');
    assert.equal(r.code, 0, r.stderr);
    const info = await lab.kvmnetOk('net', 'info', 'on');
    assert.match(info, /^Offload: +on$/m);
    if (flowtables) {
      assert.deepEqual(notes(r.stderr), []);
      assert.match(await table(), /flowtable net_on_ft \{[^}]*devices = \{ virbr50 \}/s);
      assert.match(await table(), /flow add @net_on_ft/);
    } else {
      assert.deepEqual(notes(r.stderr), [note]);
      assert.doesNotMatch(r.stdout, /note:/);
      assert.doesNotMatch(await table(), /flowtable|flow add/);
      // --json: the note is in "notes" (and still on stderr).
      const j = await lab.kvmnet('net', 'start', 'on', '--json');
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual((JSON.parse(j.stdout) as { notes: string[] }).notes, [note.slice('note: '.length)]);
      assert.deepEqual(notes(j.stderr), [note]);
    }
    const g = await lab.addGuest('on1', 'virbr50');
    await lab.dhcp(g, 'on-one');
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
    // Twice: established flows keep working (offloaded, where the kernel can).
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
    // What was applied is what check expects: a skipped offload is no drift.
    const check = await lab.kvmnet('check', 'on');
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /no drift/);
    assert.doesNotMatch((await lab.kvmnetOk('net', 'start', 'on', '--dry-run')).toString(), /nft/);
  });

  test('--no-offload: stored, shown, exported; no flowtable and no note', async () => {
    await lab.kvmnetOk(
      'net',
      'define',
      'off',
      '--subnet',
      '10.51.0.0/24',
      '--bridge',
      'virbr51',
      '--no-offload',
    );
    assert.match(await lab.kvmnetOk('net', 'info', 'off'), /^Offload: +off \(--no-offload\)$/m);
    assert.equal((await lab.kvmnetJson<{ offload?: boolean }>('net', 'info', 'off')).offload, false);
    assert.equal((await lab.kvmnetJson<{ offload?: boolean }>('net', 'info', 'on')).offload, undefined);
    assert.match(await lab.kvmnetOk('export'), /\n {4}offload: false\n/);
    assert.match(await lab.kvmnetOk('net', 'dumpxml', 'off'), /offload="no"/);
    const r = await lab.kvmnet('net', 'start', 'off');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(notes(r.stderr), []);
    const nft = await table();
    assert.doesNotMatch(nft, /net_off_ft/);
    const g = await lab.addGuest('off1', 'virbr51');
    await lab.dhcp(g, 'off-one');
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
    // Refused where there is no NAT, naming the option.
    const bad = await lab.kvmnet(
      'net',
      'define',
      'iso',
      '--mode',
      'isolated',
      '--subnet',
      '10.52.0.0/24',
      '--no-offload',
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /offload is for nat networks/);
    await lab.kvmnetOk('net', 'stop', 'off');
    await lab.kvmnetOk('net', 'stop', 'on');
  });
});
