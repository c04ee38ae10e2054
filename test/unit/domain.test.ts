// libvirt domains (src/model/domain.ts): the interfaces of the live domain XML the qemu hook gets,
// and the <interface> element `kvmnet libvirt interface` prints; the hook script (src/engine/hook.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser } from 'fast-xml-parser';
import { KvmnetError } from '../../src/model/errors.js';
import { parseDomainXml, renderInterfaceXml, virtInstallNetwork } from '../../src/model/domain.js';
import { HOOK_MARKER, renderHookScript } from '../../src/engine/hook.js';

const LIVE = `<domain type='kvm' id='3'>
  <name>kvm1</name>
  <uuid>2f5e3c1a-0000-4000-8000-000000000001</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='bridge'>
      <mac address='52:54:00:60:E4:6A'/>
      <source bridge='virbr0'/>
      <target dev='vnet7'/>
      <model type='virtio'/>
      <alias name='net0'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:00:00:02'/>
      <source network='lab' portid='a4c1' bridge='virbr1'/>
      <target dev='vnet8'/>
      <model type='e1000e'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:00:00:03'/>
    </interface>
    <interface type='direct'>
      <mac address='52:54:00:00:00:04'/>
      <source dev='eth0' mode='bridge'/>
      <target dev='macvtap0'/>
    </interface>
  </devices>
</domain>
`;

describe('parseDomainXml', () => {
  test('bridge and network interfaces with their tap, MAC (lower case), bridge and model', () => {
    assert.deepEqual(parseDomainXml(LIVE), {
      name: 'kvm1',
      interfaces: [
        { type: 'bridge', mac: '52:54:00:60:e4:6a', bridge: 'virbr0', dev: 'vnet7', model: 'virtio' },
        { type: 'network', mac: '52:54:00:00:00:02', bridge: 'virbr1', dev: 'vnet8', model: 'e1000e' },
      ],
    });
  });

  test('an inactive definition has no target dev', () => {
    const xml = `<domain type='kvm'><name>a</name><devices><interface type='bridge'><mac address='52:54:00:00:00:09'/><source bridge='virbr0'/></interface></devices></domain>`;
    assert.deepEqual(parseDomainXml(xml).interfaces, [
      { type: 'bridge', mac: '52:54:00:00:00:09', bridge: 'virbr0' },
    ]);
  });

  test('a domain without devices or interfaces has none', () => {
    assert.deepEqual(parseDomainXml('<domain><name>x</name></domain>').interfaces, []);
    assert.deepEqual(parseDomainXml('<domain><name>x</name><devices/></domain>').interfaces, []);
  });

  test('interfaces missing a MAC or source bridge are skipped', () => {
    const xml = `<domain><name>x</name><devices>
      <interface type='bridge'><source bridge='virbr0'/><target dev='vnet1'/></interface>
      <interface type='bridge'><mac address='nonsense'/><source bridge='virbr0'/></interface>
      <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
    </devices></domain>`;
    assert.deepEqual(parseDomainXml(xml).interfaces, []);
  });

  for (const [name, xml] of [
    ['malformed', '<domain><name>x</name><devices>'],
    ['empty', ''],
    ['not a domain', '<network><name>x</name></network>'],
  ] as const) {
    test(`refuses ${name} XML with an input error`, () => {
      assert.throws(
        () => parseDomainXml(xml),
        (e: unknown) => e instanceof KvmnetError && e.code === 'invalid-xml',
      );
    });
  }
});

describe('renderInterfaceXml', () => {
  test('is a bridge interface with MAC, source bridge and model, and parses back', () => {
    const xml = renderInterfaceXml('virbr0', '52:54:00:60:e4:6a', 'virtio');
    assert.equal(
      xml,
      "<interface type='bridge'>\n  <mac address='52:54:00:60:e4:6a'/>\n  <source bridge='virbr0'/>\n  <model type='virtio'/>\n</interface>\n",
    );
    const dom = parseDomainXml(`<domain><name>x</name><devices>${xml}</devices></domain>`);
    assert.deepEqual(dom.interfaces, [
      { type: 'bridge', mac: '52:54:00:60:e4:6a', bridge: 'virbr0', model: 'virtio' },
    ]);
    const p = new XMLParser({ ignoreAttributes: false }).parse(xml) as Record<string, unknown>;
    assert.ok(p.interface);
  });

  test('virt-install argument', () => {
    assert.equal(
      virtInstallNetwork('br0', '52:54:00:00:00:01', 'virtio'),
      'bridge=br0,mac=52:54:00:00:00:01,model=virtio',
    );
  });
});

describe('renderHookScript', () => {
  const script = renderHookScript({
    node: '/usr/bin/node',
    bin: "/opt/kvm'net/bin/kvmnet",
    stateDir: '/var/lib/kvmnet',
    runDir: '/run/kvmnet',
  });
  test('is a shell script with the marker, the dirs, and a quoted kvmnet path', () => {
    assert.match(script, /^#!\/bin\/sh\n/);
    assert.ok(script.includes(HOOK_MARKER));
    assert.match(script, /^KVMNET_STATE_DIR='\/var\/lib\/kvmnet'$/m);
    assert.match(script, /^KVMNET_RUN_DIR='\/run\/kvmnet'$/m);
    assert.ok(script.includes(`'/usr/bin/node' '/opt/kvm'\\''net/bin/kvmnet' libvirt hook-event`));
  });
  test('always exits 0 and never calls virsh', () => {
    assert.match(script, /exit 0\n$/);
    assert.doesNotMatch(script, /virsh/);
    assert.match(script, /timeout -k 2 \d+/);
  });
});
