// Issue 3: port bookkeeping in a namespace lab (no QEMU): every bad input is refused with exit 2
// and changes nothing; taps of a stopped network wait unplugged; reservations reach dnsmasq
// without a restart; removing ports removes their taps and reservations.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

interface PortJson {
  port: { name: string; id: string; mac: string; tapMac: string; ip?: string; qemu: string[] };
}

describe('ports without guests', () => {
  let lab: Lab;
  let dnsmasqPid = 0;

  before(async () => {
    lab = await Lab.create('portsns');
    await lab.kvmnetOk('up');
    await lab.kvmnetOk('net', 'define', 'nodhcp', '--subnet', '10.50.0.0/24', '--no-dhcp');
    await lab.kvmnetOk(
      'port',
      'add',
      'default',
      '--vm',
      'kvm1',
      '--mac',
      '52:54:00:60:e4:6a',
      '--ip',
      '192.168.122.50',
    );
    await lab.kvmnetOk('port', 'add', 'default', '--vm', 'kvm1', '--mac', '52:54:00:60:e4:6b');
    dnsmasqPid = (await lab.kvmnetJson<{ dnsmasq: { pid: number } }>('net', 'info', 'default')).dnsmasq.pid;
  });
  after(async () => {
    await lab.destroy();
  });

  const cases: Array<{ name: string; args: string[]; error: RegExp }> = [
    {
      name: 'unknown network',
      args: ['port', 'add', 'nope', '--vm', 'x'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'invalid VM name',
      args: ['port', 'add', 'default', '--vm', 'a_b'],
      error: /VM name "a_b" is not valid/,
    },
    {
      name: 'malformed MAC',
      args: ['port', 'add', 'default', '--vm', 'x', '--mac', '52:54:00:zz:00:01'],
      error: /mac "52:54:00:zz:00:01" is not a MAC address/,
    },
    {
      name: 'MAC starting with fe',
      args: ['port', 'add', 'default', '--vm', 'x', '--mac', 'fe:54:00:00:00:01'],
      error: /mac fe:54:00:00:00:01 starts with fe/,
    },
    {
      name: 'multicast MAC',
      args: ['port', 'add', 'default', '--vm', 'x', '--mac', '01:00:5e:00:00:01'],
      error: /mac 01:00:5e:00:00:01 is a multicast address/,
    },
    {
      name: 'MAC used by another port',
      args: ['port', 'add', 'default', '--vm', 'x', '--mac', '52:54:00:60:e4:6a'],
      error: /mac 52:54:00:60:e4:6a is already used by port kvm1\/net0 \(vnet0\)/,
    },
    {
      name: 'address outside the subnet',
      args: ['port', 'add', 'default', '--vm', 'x', '--ip', '10.0.0.5'],
      error: /ip 10\.0\.0\.5 is outside subnet 192\.168\.122\.0\/24 of "default"/,
    },
    {
      name: 'the gateway address',
      args: ['port', 'add', 'default', '--vm', 'x', '--ip', '192.168.122.1'],
      error: /ip 192\.168\.122\.1 is the gateway of "default"/,
    },
    {
      name: 'the network address',
      args: ['port', 'add', 'default', '--vm', 'x', '--ip', '192.168.122.0'],
      error: /ip 192\.168\.122\.0 is the network address/,
    },
    {
      name: 'the broadcast address',
      args: ['port', 'add', 'default', '--vm', 'x', '--ip', '192.168.122.255'],
      error: /ip 192\.168\.122\.255 is the broadcast address/,
    },
    {
      name: 'an address reserved by another port',
      args: ['port', 'add', 'default', '--vm', 'x', '--ip', '192.168.122.50'],
      error: /ip 192\.168\.122\.50 is already reserved for kvm1\/net0 \(vnet0\)/,
    },
    {
      name: 'a reservation on a network without DHCP',
      args: ['port', 'add', 'nodhcp', '--vm', 'x', '--ip', '10.50.0.5'],
      error: /network "nodhcp" has no DHCP server/,
    },
    {
      name: 'a bad NIC model',
      args: ['port', 'add', 'default', '--vm', 'x', '--model', 'Virtio Net'],
      error: /model "Virtio Net" is not a QEMU device name/,
    },
    {
      name: 'port link of an unknown VM',
      args: ['port', 'link', 'nobody', 'down'],
      error: /no port or VM named "nobody"/,
    },
    {
      name: 'port link to a bad state',
      args: ['port', 'link', 'vnet0', 'sideways'],
      error: /link state "sideways" is not up or down/,
    },
    {
      name: 'port link of a VM with two ports',
      args: ['port', 'link', 'kvm1', 'down'],
      error: /VM "kvm1" has 2 ports: kvm1\/net0 \(vnet0 on default\), kvm1\/net1 \(vnet1 on default\)/,
    },
    {
      name: 'port del of an unknown port',
      args: ['port', 'del', 'vnet99'],
      error: /no port or VM named "vnet99"/,
    },
    {
      name: 'port del on an unknown network',
      args: ['port', 'del', 'kvm1', '--network', 'nope'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'undefine of a network with ports',
      args: ['net', 'undefine', 'default'],
      error: /network "default" (is running|still has 2 ports)/,
    },
  ];

  for (const c of cases) {
    test(`${c.name}: exit 2, one error line, nothing changed`, async () => {
      await assertRefused(lab, c.args, c.error);
    });
  }

  test('a reservation reaches the running dnsmasq without a restart', async () => {
    const hosts = await readFile(join(lab.runDir, 'net/default/dhcp-hosts'), 'utf8');
    assert.equal(hosts, '52:54:00:60:e4:6a,192.168.122.50,kvm1\n');
    assert.equal(await readFile(join(lab.runDir, 'net/default/hosts'), 'utf8'), '192.168.122.50 kvm1\n');
    assert.equal(
      (await lab.kvmnetJson<{ dnsmasq: { pid: number } }>('net', 'info', 'default')).dnsmasq.pid,
      dnsmasqPid,
    );
    // dnsmasq answers for the reserved name at once.
    const g = await lab.addGuest('q1', 'virbr0');
    await lab.dhcp(g, 'q1');
    const ns = await lab.exec(g, ['busybox', 'nslookup', 'kvm1', '192.168.122.1']);
    assert.match(ns.stdout, /Address: 192\.168\.122\.50/);
  });

  test('the tap carries the fe MAC, is plugged into the bridge, and the QEMU line opens it by name', async () => {
    const r = await lab.kvmnetJson<PortJson>(
      'port',
      'add',
      'default',
      '--vm',
      'kvm3',
      '--mac',
      '52:54:00:12:0e:f7',
    );
    assert.equal(r.port.tapMac, 'fe:54:00:12:0e:f7');
    assert.deepEqual(r.port.qemu, [
      '-netdev',
      `tap,id=net0,ifname=${r.port.name},script=no,downscript=no`,
      '-device',
      'virtio-net-pci,netdev=net0,mac=52:54:00:12:0e:f7',
    ]);
    const link = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', '-d', 'link', 'show', r.port.name]),
    ) as Array<{
      address: string;
      master: string;
      linkinfo: { info_kind: string; info_data: { type: string; vnet_hdr: boolean; persist?: boolean } };
    }>;
    assert.equal(link[0]?.address, 'fe:54:00:12:0e:f7');
    assert.equal(link[0]?.master, 'virbr0');
    assert.equal(link[0]?.linkinfo.info_kind, 'tun');
    assert.equal(link[0]?.linkinfo.info_data.type, 'tap');
  });

  test('a port on a stopped network waits unplugged and is plugged in by net start', async () => {
    await lab.kvmnetOk('net', 'define', 'lab', '--subnet', '10.60.0.0/24', '--bridge', 'virbr60');
    const r = await lab.kvmnetJson<PortJson>('port', 'add', 'lab', '--vm', 'kvm4', '--ip', '10.60.0.40');
    const before = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', r.port.name]),
    ) as Array<{ master?: string }>;
    assert.equal(before[0]?.master, undefined);
    await lab.kvmnetOk('net', 'start', 'lab');
    const afterStart = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', r.port.name]),
    ) as Array<{ master?: string }>;
    assert.equal(afterStart[0]?.master, 'virbr60');
    assert.equal(
      await readFile(join(lab.runDir, 'net/lab/dhcp-hosts'), 'utf8'),
      `${r.port.mac},10.60.0.40,kvm4\n`,
    );
    await lab.kvmnetOk('net', 'stop', 'lab');
    const afterStop = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', r.port.name]),
    ) as Array<{ master?: string }>;
    assert.equal(afterStop[0]?.master, undefined, 'the tap outlives its stopped network, unplugged');
  });

  test('port del removes the tap and the reservation; undefine --force removes the rest', async () => {
    await lab.kvmnetOk('port', 'del', 'kvm1/net0');
    assert.equal(await readFile(join(lab.runDir, 'net/default/dhcp-hosts'), 'utf8'), '');
    const links = await must('ip', ['-n', lab.hostNs, '-br', 'link']);
    assert.doesNotMatch(links, /^vnet0 /m);
    assert.match(links, /^vnet1 /m);
    // kvm1 has one port left, so its VM name alone now names it.
    await lab.kvmnetOk('port', 'link', 'kvm1', 'down');
    const list = await lab.kvmnetJson<Array<{ id: string; link: string }>>('port', 'list', 'default');
    assert.deepEqual(
      list.map((p) => [p.id, p.link]),
      [
        ['kvm1/net1', 'down'],
        ['kvm3/net0', 'up'],
      ],
    );
    await lab.kvmnetOk('net', 'undefine', 'default', '--force');
    await lab.kvmnetOk('net', 'undefine', 'lab', '--force');
    const left = await must('ip', ['-n', lab.hostNs, '-br', 'link']);
    assert.doesNotMatch(left, /vnet|virbr/);
    assert.deepEqual(await lab.kvmnetJson<unknown[]>('port', 'list'), []);
  });
});
