// Issue 2 acceptance 3: isolated and routed networks in a namespace lab.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

describe('isolated and routed networks', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('modes');
    await lab.server(lab.lanNs, 8080, 'lan');
  });
  after(async () => {
    await lab.destroy();
  });

  test('an isolated guest reaches its gateway but not the LAN', async () => {
    await lab.kvmnetOk(
      'net',
      'define',
      'iso',
      '--mode',
      'isolated',
      '--subnet',
      '10.20.0.0/24',
      '--bridge',
      'virbr20',
    );
    await lab.kvmnetOk('net', 'start', 'iso');
    const g = await lab.addGuest('iso1', 'virbr20');
    const lease = await lab.dhcp(g, 'iso-one');
    assert.match(lease.ip, /^10\.20\.0\.\d+$/);
    assert.equal(lease.router, 'none', 'an isolated network hands out no default route');
    const ping = await lab.exec(g, ['busybox', 'ping', '-c', '1', '-W', '2', '10.20.0.1']);
    assert.equal(ping.code, 0, ping.stdout);
    // Even with a default route set by hand, nothing is forwarded.
    await must('ip', ['-n', g, 'route', 'add', 'default', 'via', '10.20.0.1']);
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), null);
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    assert.doesNotMatch(nft, /net_iso_nat/, 'no masquerade chain for an isolated network');
  });

  test('a routed guest reaches the LAN with its own address as source', async () => {
    await lab.kvmnetOk(
      'net',
      'define',
      'rt',
      '--mode',
      'routed',
      '--subnet',
      '10.30.0.0/24',
      '--bridge',
      'virbr30',
    );
    await lab.kvmnetOk('net', 'start', 'rt');
    await must('ip', ['-n', lab.lanNs, 'route', 'add', '10.30.0.0/24', 'via', HOST_LAN_IP]);
    const g = await lab.addGuest('rt1', 'virbr30');
    const lease = await lab.dhcp(g, 'rt-one');
    assert.equal(lease.router, '10.30.0.1');
    assert.equal(await lab.fetch(g, `http://${LAN_ROUTER}:8080/`), `lan sees ${lease.ip}\n`);
    // Routed means both ways: the LAN reaches the guest directly.
    await lab.server(g, 8081, 'rt-guest');
    assert.equal(await lab.fetch(lab.lanNs, `http://${lease.ip}:8081/`), `rt-guest sees ${LAN_ROUTER}\n`);
  });

  test('the isolated guest cannot reach the routed guest', async () => {
    const rtGuest = `${lab.name}-rt1`;
    const ip =
      (await must('ip', ['-n', rtGuest, '-4', '-o', 'addr', 'show', 'eth0'])).match(/inet (\S+)\//)?.[1] ??
      '';
    assert.equal(await lab.fetch(`${lab.name}-iso1`, `http://${ip}:8081/`), null);
  });

  test('stopping both leaves no kvmnet table or process', async () => {
    await lab.kvmnetOk('down');
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'ruleset']);
    assert.equal(nft, lab.hostRuleset);
    const hostPids = await lab.pids(lab.hostNs);
    assert.deepEqual(hostPids, []);
  });
});
