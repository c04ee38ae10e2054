// Issue 6 acceptance 6: Debian's libvirtd, started inside a lab namespace, boots the test guest
// (TCG) with <interface type='bridge'> on kvmnet's virbr0. The guest gets its reservation from
// kvmnet's dnsmasq, the qemu hook run by libvirtd itself tells kvmnet the domain's vnetN tap, a
// forward by the domain name reaches the guest's web server from the LAN, and the XML of
// `kvmnet net dumpxml` is accepted by libvirtd's `virsh net-define`.
// libvirt's paths are global: this is the only test file that may start libvirtd.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ensureGuestImage } from '../lib/guest.js';
import { HOST_LAN_IP, Lab } from '../lib/lab.js';
import { Libvirtd, virsh, virshOk } from '../lib/libvirtd.js';

const DOM = 'dom1';
const MAC = '52:54:00:6c:00:01';
const IP = '192.168.122.60';
const EXPORT = 'kvmnet-export';
const HOOKS = '/etc/libvirt/hooks';

interface ShowJson {
  network: string;
  ports: Array<{ port: string; tap: string; id: string; vm: string; mac: string; ip: string | null }>;
}

function domainXml(kernel: string, initrd: string, serial: string): string {
  return `<domain type='qemu'>
  <name>${DOM}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>${kernel}</kernel>
    <initrd>${initrd}</initrd>
    <cmdline>console=ttyS0 quiet kvmnet.hostname=${DOM}</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'>
      <source path='${serial}'/>
      <target port='0'/>
    </serial>
    <interface type='bridge'>
      <source bridge='virbr0'/>
      <mac address='${MAC}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
  </devices>
</domain>
`;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

describe('a libvirt domain on a kvmnet network', () => {
  let lab: Lab;
  let libvirtd: Libvirtd | undefined;
  let work: string;
  let serial: string;
  let hookInstalled = false;
  let madeQemuD = false;

  before(async () => {
    const image = ensureGuestImage();
    lab = await Lab.create('lvd');
    work = join(lab.dir, 'libvirt');
    serial = join(work, 'serial.log');
    await mkdir(work, { mode: 0o755 });
    await lab.kvmnetOk('up');
    await lab.kvmnetOk('libvirt', 'interface', 'default', '--vm', DOM, '--mac', MAC, '--ip', IP);
    // libvirtd looks for hooks when it starts.
    madeQemuD = !(await exists(join(HOOKS, 'qemu.d')));
    await lab.kvmnetOk('libvirt', 'hook', 'install', '--dir', HOOKS);
    hookInstalled = true;
    const { kernel, initrd } = await image;
    // libvirt chowns the boot files while the domain runs: boot from copies.
    await copyFile(kernel, join(work, 'vmlinuz'));
    await copyFile(initrd, join(work, 'initrd.img'));
    libvirtd = await Libvirtd.start(lab);
  });

  after(async () => {
    try {
      if (libvirtd) {
        await virsh(['destroy', DOM]);
        await virsh(['undefine', DOM]);
        await virsh(['net-undefine', EXPORT]);
        await libvirtd.stop();
      }
      if (hookInstalled) await lab.kvmnet('libvirt', 'hook', 'uninstall', '--dir', HOOKS);
      if (madeQemuD) await rmdir(join(HOOKS, 'qemu.d')).catch(() => {});
      await rm(`/var/log/libvirt/qemu/${DOM}.log`, { force: true });
    } finally {
      await lab?.destroy();
    }
  });

  test('the domain gets its reservation; show names it on its vnetN tap through the hook', async () => {
    const xmlFile = join(work, `${DOM}.xml`);
    await writeFile(xmlFile, domainXml(join(work, 'vmlinuz'), join(work, 'initrd.img'), serial));
    await virshOk('define', xmlFile);
    await virshOk('start', DOM);

    const deadline = Date.now() + 40_000;
    let lease: { ip: string; vm: string | null; port: string | null } | undefined;
    while (Date.now() < deadline) {
      const leases =
        await lab.kvmnetJson<Array<{ mac: string; ip: string; vm: string | null; port: string | null }>>(
          'leases',
        );
      lease = leases.find((l) => l.mac === MAC);
      if (lease) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const console = await readFile(serial, 'utf8').catch((e: Error) => e.message);
    assert.ok(lease, `no lease for ${MAC}; serial:\n${console}`);
    assert.equal(lease.ip, IP);
    assert.equal(lease.vm, DOM);
    assert.match(lease.port ?? '', /^vnet\d+$/);

    const nets = await lab.kvmnetJson<ShowJson[]>('show');
    const p = nets.find((n) => n.network === 'default')?.ports.find((x) => x.mac === MAC);
    const tap = (await virshOk('domiflist', DOM)).trim().split(/\s+/)[0] ?? '';
    assert.match(tap, /^vnet\d+$/);
    assert.deepEqual(
      { port: p?.port, tap: p?.tap, vm: p?.vm, id: p?.id, ip: p?.ip },
      { port: tap, tap: 'libvirt', vm: DOM, id: `${DOM}/net0`, ip: IP },
    );
    const log = await readFile(join(lab.stateDir, 'libvirt-hook.log'), 'utf8');
    assert.match(log, new RegExp(`${DOM} started`));
  });

  test('a forward by the domain name reaches its web server from the LAN', async () => {
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', `${DOM}:80`);
    let page: string | null = null;
    for (let i = 0; i < 15 && !(page ?? '').includes('hello'); i++) {
      page = await lab.fetch(lab.lanNs, `http://${HOST_LAN_IP}:8080/`, 3);
      if (!(page ?? '').includes('hello')) await new Promise((r) => setTimeout(r, 1000));
    }
    assert.match(page ?? '', new RegExp(`hello from ${DOM}`));
  });

  test('libvirtd takes the XML of kvmnet net dumpxml (virsh net-define)', async () => {
    const xml = (await lab.kvmnetOk('net', 'dumpxml', 'default'))
      .replace(/<name>default<\/name>/, `<name>${EXPORT}</name>`)
      .replace(/<uuid>[^<]*<\/uuid>\s*/, '')
      .replace(/<bridge name=(['"])virbr0\1/, "<bridge name='virbr9'");
    assert.match(xml, new RegExp(`<name>${EXPORT}</name>`));
    assert.match(xml, /<bridge name='virbr9'/);
    assert.doesNotMatch(xml, /<uuid>/);
    const file = join(work, 'export.xml');
    await writeFile(file, xml);
    await virshOk('net-define', file);
    const back = await virshOk('net-dumpxml', EXPORT);
    assert.match(back, /<forward mode='nat'/);
    assert.match(back, /<ip address='192\.168\.122\.1' prefix='24'>/);
    assert.match(back, /<range start='192\.168\.122\.2' end='192\.168\.122\.254'/);
    await virshOk('net-undefine', EXPORT);
  });
});
