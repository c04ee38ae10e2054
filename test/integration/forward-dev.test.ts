// Issue 6: libvirt's <forward dev> (a NAT network whose traffic may leave only through one host
// interface) and forward mode open (no kvmnet firewall rules at all), in a namespace lab. The host
// has eth1 to the LAN and a second interface eth2 to another namespace ("far") with its own server.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

const FAR_HOST = '192.168.200.1';
const FAR_SERVER = '192.168.200.254';

describe('forward dev and mode open', () => {
  let lab: Lab;
  let far: string;

  before(async () => {
    lab = await Lab.create('fwddev');
    far = `${lab.name}-far`;
    await must('ip', ['netns', 'add', far]);
    lab.guests.push(far); // removed with the lab
    await must('ip', ['-n', far, 'link', 'set', 'lo', 'up']);
    await must('ip', [
      '-n',
      lab.hostNs,
      'link',
      'add',
      'eth2',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      far,
    ]);
    await must('ip', ['-n', lab.hostNs, 'addr', 'add', `${FAR_HOST}/24`, 'dev', 'eth2']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'eth2', 'up']);
    await must('ip', ['-n', far, 'addr', 'add', `${FAR_SERVER}/24`, 'dev', 'eth0']);
    await must('ip', ['-n', far, 'link', 'set', 'eth0', 'up']);
    await lab.waitUp(lab.hostNs, 'eth2');
    await lab.waitUp(far, 'eth0');
    await lab.server(lab.lanNs, 8080, 'lan');
    await lab.server(far, 8080, 'far');
  });
  after(async () => {
    await lab.destroy();
  });

  test('a NAT guest with forward dev eth1 reaches the LAN through eth1 but not the server behind eth2', async () => {
    // The host itself reaches both servers.
    assert.equal(await lab.fetch(lab.hostNs, `http://${FAR_SERVER}:8080/`), `far sees ${FAR_HOST}\n`);
    const xml = join(lab.dir, 'fd.xml');
    await writeFile(
      xml,
      `<network>
  <name>fd</name>
  <forward mode='nat' dev='eth1'><interface dev='eth1'/></forward>
  <bridge name='virbr40'/>
  <ip address='10.40.0.1' prefix='24'><dhcp><range start='10.40.0.100' end='10.40.0.199'/></dhcp></ip>
</network>
`,
    );
    await lab.kvmnetOk('net', 'define', xml);
    const shown = await lab.kvmnetOk('net', 'dumpxml', 'fd');
    assert.match(shown, /<forward mode="nat" dev="eth1"\/>/);
    await lab.kvmnetOk('net', 'start', 'fd');
    const g = await lab.addGuest('fd1', 'virbr40');
    const lease = await lab.dhcp(g, 'fd-one');
    assert.equal(lease.router, '10.40.0.1');
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
    assert.equal(await lab.fetch(g, `http://${FAR_SERVER}:8080/`), null);
    const nft = await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'list',
      'chain',
      'inet',
      'kvmnet',
      'net_fd_out',
    ]);
    assert.match(nft, /ip saddr 10\.40\.0\.0\/24 oifname "eth1" accept/);
    // Control: a NAT network without forward dev does reach the far server (through eth2).
    await lab.kvmnetOk('net', 'define', 'any', '--subnet', '10.42.0.0/24', '--bridge', 'virbr42');
    await lab.kvmnetOk('net', 'start', 'any');
    const g2 = await lab.addGuest('any1', 'virbr42');
    await lab.dhcp(g2, 'any-one');
    assert.equal(await lab.fetch(g2, `http://${FAR_SERVER}:8080/`), `far sees ${FAR_HOST}\n`);
    await lab.kvmnetOk('net', 'stop', 'any');
    // A second start plans nothing.
    assert.doesNotMatch(await lab.kvmnetOk('net', 'start', 'fd', '--dry-run'), /nft/);
  });

  test('an open network adds no rules: the table goes with the last network that has rules', async () => {
    await lab.kvmnetOk(
      'net',
      'define',
      'op',
      '--mode',
      'open',
      '--subnet',
      '10.41.0.0/24',
      '--bridge',
      'virbr41',
    );
    await lab.kvmnetOk('net', 'start', 'op');
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    assert.doesNotMatch(nft, /net_op_|virbr41|10\.41\.0\./);
    await lab.kvmnetOk('net', 'stop', 'fd');
    const ruleset = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.equal(ruleset, lab.hostRuleset, 'no table is kept for the open network');
    // Routed without any rules: the LAN routes the subnet back, the guest reaches it with its own address.
    await must('ip', ['-n', lab.lanNs, 'route', 'add', '10.41.0.0/24', 'via', HOST_LAN_IP]);
    const g = await lab.addGuest('op1', 'virbr41');
    const lease = await lab.dhcp(g, 'op-one');
    assert.equal(lease.router, '10.41.0.1');
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${lease.ip}\n`);
    assert.equal(
      (await must('ip', ['netns', 'exec', lab.hostNs, 'cat', '/proc/sys/net/ipv4/ip_forward'])).trim(),
      '1',
    );
    assert.doesNotMatch(await lab.kvmnetOk('net', 'start', 'op', '--dry-run'), /nft/);
  });

  test('stopping everything leaves no kvmnet table or process', async () => {
    await lab.kvmnetOk('down');
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.equal(nft, lab.hostRuleset);
    assert.deepEqual(await lab.pids(lab.hostNs), []);
  });
});
