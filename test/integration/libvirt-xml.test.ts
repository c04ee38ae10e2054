// Issue 6 (import/export): a network defined from libvirt XML runs with what the XML asked for —
// STP and forward delay, MTU, a static DHCP host, DNS records, a lease time — on the real kernel and
// dnsmasq; dumpxml gives it back; XML kvmnet cannot honour is refused with its XPath.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

const XML = `<network>
  <name>lab</name>
  <forward mode='nat'/>
  <bridge name='virbr7' stp='on' delay='2'/>
  <mtu size='9000'/>
  <domain name='lab'/>
  <dns>
    <host ip='10.10.0.1'><hostname>gw</hostname></host>
    <txt name='info' value='kvmnet lab'/>
  </dns>
  <ip address='10.10.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.10.0.100' end='10.10.0.199'><lease expiry='2' unit='hours'/></range>
      <host mac='52:54:00:aa:bb:cc' name='web' ip='10.10.0.10'/>
    </dhcp>
  </ip>
</network>
`;

describe('a network defined from libvirt XML', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('lvx');
    await writeFile(join(lab.dir, 'lab.xml'), XML);
  });
  after(async () => {
    await lab.destroy();
  });

  test('is defined and started with the bridge, MTU and DHCP settings of the XML', async () => {
    await lab.kvmnetOk('net', 'define', join(lab.dir, 'lab.xml'));
    await lab.kvmnetOk('net', 'start', 'lab');
    const link = JSON.parse(
      await must('ip', ['-n', lab.hostNs, '-json', '-d', 'link', 'show', 'virbr7']),
    ) as Array<{
      mtu: number;
      linkinfo: { info_data: { stp_state: number; forward_delay: number } };
    }>;
    assert.equal(link[0]?.linkinfo.info_data.stp_state, 1);
    assert.equal(link[0]?.linkinfo.info_data.forward_delay, 200);
    const conf = await readFile(join(lab.runDir, 'net/lab/dnsmasq.conf'), 'utf8');
    assert.match(conf, /^dhcp-range=10\.10\.0\.100,10\.10\.0\.199,255\.255\.255\.0,2h$/m);
    assert.match(conf, /^txt-record=info,kvmnet lab$/m);
    const again = await lab.kvmnetJson<{ plans: Array<{ steps: unknown[] }> }>('net', 'start', 'lab');
    assert.deepEqual(
      again.plans.map((p) => p.steps.length),
      [0],
      'a second start plans nothing',
    );
  });

  test('the static host gets its address from the real dnsmasq and DNS answers the XML records', async () => {
    const g = await lab.addGuest('web', 'virbr7');
    await must('ip', ['-n', g, 'link', 'set', 'eth0', 'address', '52:54:00:aa:bb:cc']);
    const lease = await lab.dhcp(g, 'web');
    assert.equal(lease.ip, '10.10.0.10');
    const ns = await lab.exec(g, ['busybox', 'nslookup', 'gw.lab', '10.10.0.1']);
    assert.match(ns.stdout, /Address: 10\.10\.0\.1/);
    const txt = await lab.exec(g, ['busybox', 'nslookup', '-type=txt', 'info', '10.10.0.1']);
    assert.match(txt.stdout, /kvmnet lab/);
  });

  test('dumpxml gives back what was defined: defining its output again yields the same definition', async () => {
    const xml = await lab.kvmnetOk('net', 'dumpxml', 'lab');
    assert.match(xml, /<bridge name=['"]virbr7['"] stp=['"]on['"] delay=['"]2['"]/);
    assert.match(xml, /<mtu size=['"]9000['"]/);
    const exported = await lab.kvmnetOk('export');
    await lab.kvmnetOk('net', 'undefine', 'lab', '--force');
    await writeFile(join(lab.dir, 'again.xml'), xml);
    await lab.kvmnetOk('net', 'define', join(lab.dir, 'again.xml'));
    assert.equal(await lab.kvmnetOk('export'), exported);
  });

  test('XML kvmnet cannot honour is refused with its XPath, and nothing changes', async () => {
    const v6 = XML.replace('<name>lab</name>', '<name>lab6</name>')
      .replace("name='virbr7'", "name='virbr8'")
      .replace('</network>', "  <ip family='ipv6' address='2001:db8::1' prefix='64'/>\n</network>");
    await writeFile(join(lab.dir, 'v6.xml'), v6);
    await assertRefused(lab, ['net', 'define', join(lab.dir, 'v6.xml')], /\/network\/ip\[2\]/);
  });
});
