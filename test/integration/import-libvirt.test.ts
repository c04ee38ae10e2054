// Issue 6: `kvmnet net import-libvirt --from DIR` takes over every network libvirt defines there,
// all or nothing, with autostart as libvirt's DIR/autostart/ says.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { assertRefused } from '../lib/refusal.js';

const DEFAULT_XML = `<network>
  <name>default</name>
  <uuid>9a05da11-e96b-47f3-8253-a3a482e445f5</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
`;
const ISO_XML = `<network>
  <name>iso</name>
  <bridge name='virbr5'/>
  <ip address='10.20.0.1' prefix='24'/>
</network>
`;

describe('net import-libvirt', () => {
  let lab: Lab;
  let dir: string;

  before(async () => {
    lab = await Lab.create('imp');
    dir = join(lab.dir, 'networks');
    await mkdir(join(dir, 'autostart'), { recursive: true });
    await writeFile(join(dir, 'default.xml'), DEFAULT_XML);
    await writeFile(join(dir, 'iso.xml'), ISO_XML);
    await symlink('../default.xml', join(dir, 'autostart', 'default.xml'));
  });
  after(async () => {
    await lab.destroy();
  });

  test('--dry-run lists what would be defined and changes nothing', async () => {
    const before = await lab.snapshot();
    const out = await lab.kvmnetOk('net', 'import-libvirt', '--from', dir, '--dry-run');
    assert.deepEqual(
      out.split('\n').filter((l) => l.startsWith('network ')),
      [
        'network default: would define (mode nat, bridge virbr0, subnet 192.168.122.0/24 gateway 192.168.122.1, dhcp 192.168.122.2-192.168.122.254, stp on forward delay 0, autostart true)',
        'network iso: would define (mode isolated, bridge virbr5, subnet 10.20.0.0/24 gateway 10.20.0.1, dhcp off, autostart false)',
      ],
    );
    assert.deepEqual(await lab.snapshot(), before);
  });

  test('defines every network, autostart as libvirt had it, and they start', async () => {
    await lab.kvmnetOk('net', 'import-libvirt', '--from', dir);
    const list = await lab.kvmnetJson<
      Array<{ name: string; mode: string; bridge: string; autostart: boolean; mac: string; stp?: boolean }>
    >('net', 'list');
    assert.deepEqual(
      list.map((n) => [n.name, n.mode, n.bridge, n.autostart]),
      [
        ['default', 'nat', 'virbr0', true],
        ['iso', 'isolated', 'virbr5', false],
      ],
    );
    assert.equal(list[0]?.mac, '52:54:00:0a:cd:21');
    assert.equal(list[0]?.stp, true);
    await lab.kvmnetOk('up');
    assert.deepEqual(
      (await lab.kvmnetJson<Array<{ state: string }>>('net', 'list')).map((n) => n.state),
      ['active', 'inactive'],
    );
    await lab.kvmnetOk('down');
  });

  test('a network already defined in kvmnet is refused by name', async () => {
    await assertRefused(
      lab,
      ['net', 'import-libvirt', '--from', dir],
      /network "default" \(.*default\.xml\) is already defined in kvmnet/,
    );
  });

  test('all or nothing: one file kvmnet cannot honour, and none is defined', async () => {
    const bad = join(lab.dir, 'bad');
    await mkdir(bad);
    await writeFile(
      join(bad, 'good.xml'),
      ISO_XML.replace('<name>iso</name>', '<name>good</name>')
        .replace('virbr5', 'virbr6')
        .replace('10.20.0.1', '10.21.0.1'),
    );
    await writeFile(
      join(bad, 'v6.xml'),
      ISO_XML.replace('<name>iso</name>', '<name>v6</name>')
        .replace('virbr5', 'virbr8')
        .replace('10.20.0.1', '10.22.0.1')
        .replace('</network>', "  <ip family='ipv6' address='2001:db8::1' prefix='64'/>\n</network>"),
    );
    await assertRefused(lab, ['net', 'import-libvirt', '--from', bad], /v6\.xml: \/network\/ip\[2\]/);
    assert.deepEqual(
      (await lab.kvmnetJson<Array<{ name: string }>>('net', 'list')).map((n) => n.name),
      ['default', 'iso'],
    );
  });
});
