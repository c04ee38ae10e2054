// Issue 6 items 4-5 in a namespace lab (no libvirt): `libvirt interface` records a libvirt port
// (MAC + reservation, no tap); the installed qemu hook, run as libvirt would with a domain XML on
// stdin, tells kvmnet the domain's tap, so show/leases/forwards name the domain; `stopped` forgets
// the tap; bad XML is logged and exits 0; uninstall removes only kvmnet's file.
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must, run } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

const MAC = '52:54:00:aa:00:01';
const MAC2 = '52:54:00:aa:00:02';

function domainXml(name: string, ifaces: Array<{ mac: string; bridge: string; dev: string }>): string {
  return `<domain type='kvm' id='1'>
  <name>${name}</name>
  <devices>
${ifaces
  .map(
    (i) => `    <interface type='bridge'>
      <mac address='${i.mac}'/>
      <source bridge='${i.bridge}'/>
      <target dev='${i.dev}'/>
      <model type='virtio'/>
    </interface>`,
  )
  .join('\n')}
  </devices>
</domain>
`;
}

interface ShowJson {
  network: string;
  ports: Array<{
    port: string;
    tap: string;
    id: string;
    vm: string;
    mac: string;
    ip: string | null;
    plugged: boolean;
  }>;
  forwards: Array<{ target: string; targetIp: string | null }>;
}

describe('libvirt ports and the qemu hook', () => {
  let lab: Lab;
  let hooks: string;
  let script: string;
  let guest: string;

  const hookRun = (args: string[], xml: string) =>
    run('ip', ['netns', 'exec', lab.hostNs, script, ...args], {
      input: xml,
      env: { PATH: process.env.PATH ?? '' },
    });
  const defaultNet = async (): Promise<ShowJson> => {
    const nets = await lab.kvmnetJson<ShowJson[]>('show');
    const n = nets.find((x) => x.network === 'default');
    assert.ok(n);
    return n;
  };

  before(async () => {
    lab = await Lab.create('lvh');
    hooks = join(lab.dir, 'hooks');
    script = join(hooks, 'qemu.d', 'kvmnet');
    await lab.kvmnetOk('up');
  });
  after(async () => {
    await lab.destroy();
  });

  test('libvirt interface records a libvirt port with its reservation and prints the XML', async () => {
    const r = await lab.kvmnetJson<{
      port: { name: string; tap: string; id: string; mac: string; ip: string; qemu: string[] };
      xml: string;
      virtInstall: string;
    }>('libvirt', 'interface', 'default', '--vm', 'kvm1', '--mac', MAC, '--ip', '192.168.122.60');
    assert.equal(r.port.tap, 'libvirt');
    assert.equal(r.port.name, '');
    assert.equal(r.port.id, 'kvm1/net0');
    assert.deepEqual(r.port.qemu, []);
    assert.match(r.xml, /<interface type='bridge'>/);
    assert.match(r.xml, /<source bridge='virbr0'\/>/);
    assert.match(r.xml, new RegExp(`<mac address='${MAC}'/>`));
    assert.match(r.xml, /<model type='virtio'\/>/);
    assert.equal(r.virtInstall, `bridge=virbr0,mac=${MAC},model=virtio`);
    const hostsFile = await readFile(join(lab.runDir, 'net', 'default', 'dhcp-hosts'), 'utf8');
    assert.match(hostsFile, new RegExp(`^${MAC},192.168.122.60,kvm1$`, 'm'));
    // No tap was made.
    const links = await must('ip', ['-n', lab.hostNs, '-o', 'link', 'show']);
    assert.doesNotMatch(links, /vnet\d/);
    // The text form.
    const text = await lab.kvmnetOk('libvirt', 'interface', 'default', '--vm', 'kvm3', '--dry-run');
    assert.match(text, /virt-install: --network bridge=virbr0,mac=52:54:00:/);
    const list = await lab.kvmnetOk('port', 'list');
    assert.match(list, /^-\s+kvm1\/net0\s+kvm1\s+default/m);
  });

  test('refusals as port add', async () => {
    await assertRefused(lab, ['libvirt', 'interface', 'nope', '--vm', 'x'], /network "nope" is not defined/);
    await assertRefused(
      lab,
      ['libvirt', 'interface', 'default', '--vm', 'x', '--mac', MAC],
      /mac 52:54:00:aa:00:01 is already used by port kvm1\/net0/,
    );
    await assertRefused(
      lab,
      ['libvirt', 'interface', 'default', '--vm', 'x', '--ip', '192.168.122.60'],
      /ip 192.168.122.60 is already reserved for kvm1\/net0/,
    );
    await assertRefused(lab, ['port', 'link', 'kvm1', 'down'], /kvm1\/net0 is a libvirt port/);
  });

  test('hook install writes an executable qemu.d/kvmnet with the state and run dirs', async () => {
    await mkdir(join(hooks, 'qemu.d'), { recursive: true });
    await writeFile(join(hooks, 'qemu.d', 'other'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const dry = await lab.kvmnetOk('libvirt', 'hook', 'install', '--dir', hooks, '--dry-run');
    assert.match(dry, /would write/);
    await assert.rejects(stat(script));
    await lab.kvmnetOk('libvirt', 'hook', 'install', '--dir', hooks);
    const st = await stat(script);
    assert.equal(st.mode & 0o777, 0o755);
    const text = await readFile(script, 'utf8');
    assert.ok(text.includes(`KVMNET_STATE_DIR='${lab.stateDir}'`));
    assert.ok(text.includes(`KVMNET_RUN_DIR='${lab.runDir}'`));
    assert.ok(text.includes(`'${process.execPath}'`));
    assert.match(text, /kvmnet-libvirt-hook/);
    // Again: unchanged.
    assert.match(await lab.kvmnetOk('libvirt', 'hook', 'install', '--dir', hooks), /already installed/);
  });

  test('started: the domain is named on its tap; leases and forwards work by name', async () => {
    // vnet7 stands in for libvirt's tap: a veth plugged into virbr0, its peer the guest's NIC.
    guest = `${lab.name}-g`;
    await must('ip', ['netns', 'add', guest]);
    lab.guests.push(guest);
    await must('ip', [
      '-n',
      lab.hostNs,
      'link',
      'add',
      'vnet7',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      guest,
    ]);
    await must('ip', ['-n', guest, 'link', 'set', 'eth0', 'address', MAC, 'up']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'vnet7', 'master', 'virbr0', 'up']);
    await lab.waitUp(guest, 'eth0');

    const xml = domainXml('kvm1', [
      { mac: MAC, bridge: 'virbr0', dev: 'vnet7' },
      { mac: '52:54:00:aa:00:09', bridge: 'br-not-kvmnet', dev: 'vnet9' },
    ]);
    const r = await hookRun(['kvm1', 'started', 'begin', '-'], xml);
    assert.equal(r.code, 0, r.stderr);
    let net = await defaultNet();
    const p = net.ports.find((x) => x.id === 'kvm1/net0');
    assert.deepEqual(
      { port: p?.port, tap: p?.tap, vm: p?.vm, mac: p?.mac, ip: p?.ip, plugged: p?.plugged },
      { port: 'vnet7', tap: 'libvirt', vm: 'kvm1', mac: MAC, ip: '192.168.122.60', plugged: true },
    );
    assert.equal(net.ports.length, 1, 'the interface on another bridge is not recorded');
    assert.match(await lab.kvmnetOk('show'), /vnet7\s+kvm1\/net0\s+52:54:00:aa:00:01\s+192\.168\.122\.60/);

    // A lease by the reservation, named after the domain.
    const lease = await lab.dhcp(guest, 'kvm1');
    assert.equal(lease.ip, '192.168.122.60');
    const leases = await lab.kvmnetJson<
      Array<{ mac: string; ip: string; vm: string | null; port: string | null }>
    >('leases', 'default');
    const l = leases.find((x) => x.mac === MAC);
    assert.deepEqual(
      { ip: l?.ip, vm: l?.vm, port: l?.port },
      { ip: '192.168.122.60', vm: 'kvm1', port: 'vnet7' },
    );

    // A forward by the domain name reaches its reservation.
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'kvm1:80');
    net = await defaultNet();
    assert.equal(net.forwards.find((f) => f.target === 'kvm1')?.targetIp, '192.168.122.60');

    // A domain kvmnet did not know: a libvirt port without reservation.
    const r2 = await hookRun(
      ['web2', 'started', 'begin', '-'],
      domainXml('web2', [{ mac: MAC2, bridge: 'virbr0', dev: 'vnet8' }]),
    );
    assert.equal(r2.code, 0, r2.stderr);
    net = await defaultNet();
    const w = net.ports.find((x) => x.vm === 'web2');
    assert.deepEqual(
      { port: w?.port, tap: w?.tap, id: w?.id, ip: w?.ip },
      { port: 'vnet8', tap: 'libvirt', id: 'web2/net0', ip: null },
    );
    // Operations the hook ignores return at once.
    assert.equal((await hookRun(['kvm1', 'prepare', 'begin', '-'], 'not xml')).code, 0);
  });

  test('stopped forgets the tap, keeps the port and its reservation', async () => {
    const r = await hookRun(
      ['kvm1', 'stopped', 'end', '-'],
      domainXml('kvm1', [{ mac: MAC, bridge: 'virbr0', dev: 'vnet7' }]),
    );
    assert.equal(r.code, 0, r.stderr);
    const net = await defaultNet();
    const p = net.ports.find((x) => x.id === 'kvm1/net0');
    assert.deepEqual({ port: p?.port, ip: p?.ip }, { port: '', ip: '192.168.122.60' });
    assert.equal(net.ports.find((x) => x.vm === 'web2')?.port, 'vnet8', 'other domains keep theirs');
    // The tap is libvirt's: kvmnet left it alone.
    await must('ip', ['-n', lab.hostNs, 'link', 'show', 'vnet7']);
    assert.match(await lab.kvmnetOk('show'), /-\s+kvm1\/net0\s+.*libvirt \(domain not running\)/);
  });

  test('malformed XML: exit 0, logged, nothing changed', async () => {
    const before = await readFile(join(lab.stateDir, 'kvmnet.json'), 'utf8');
    const r = await hookRun(['kvm1', 'started', 'begin', '-'], '<domain><devices><interface');
    assert.equal(r.code, 0);
    const log = await readFile(join(lab.stateDir, 'libvirt-hook.log'), 'utf8');
    assert.match(log, /kvm1 started begin: error: domain XML is not well-formed/);
    assert.equal(await readFile(join(lab.stateDir, 'kvmnet.json'), 'utf8'), before);
  });

  test('uninstall removes only kvmnet’s hook', async () => {
    await lab.kvmnetOk('libvirt', 'hook', 'uninstall', '--dir', hooks);
    await assert.rejects(stat(script));
    await stat(join(hooks, 'qemu.d', 'other'));
    assert.match(await lab.kvmnetOk('libvirt', 'hook', 'uninstall', '--dir', hooks), /not installed/);
    // A foreign qemu.d/kvmnet is neither overwritten nor removed.
    await writeFile(script, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    await assertRefused(lab, ['libvirt', 'hook', 'install', '--dir', hooks], /was not written by kvmnet/);
    await assertRefused(lab, ['libvirt', 'hook', 'uninstall', '--dir', hooks], /was not written by kvmnet/);
    assert.equal(await readFile(script, 'utf8'), '#!/bin/sh\nexit 0\n');
  });
});
