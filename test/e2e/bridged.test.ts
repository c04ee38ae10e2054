// Issue 5 acceptance 2 with a real QEMU guest: on a port of a bridged network it takes its address
// from the LAN's own DHCP server (192.168.100.100-199) and the LAN reaches its web page directly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bootGuest, ensureGuestImage, type Guest } from '../lib/guest.js';
import { LAN_ROUTER, Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

describe('a QEMU guest on a bridged network', () => {
  let lab: Lab;
  let guest: Guest | undefined;

  before(async () => {
    const image = ensureGuestImage();
    lab = await Lab.create('brq');
    lab.lanDhcp();
    await lab.kvmnetOk('net', 'define', 'lan', '--mode', 'bridge', '--uplink', 'eth1', '--bridge', 'virbr1');
    await lab.kvmnetOk('net', 'start', 'lan');
    const p = await lab.kvmnetJson<{ port: { name: string; mac: string } }>(
      'port',
      'add',
      'lan',
      '--vm',
      'kvm6',
    );
    await image;
    guest = await bootGuest({ netns: lab.hostNs, tap: p.port.name, mac: p.port.mac, hostname: 'kvm6' });
  });
  after(async () => {
    await guest?.kill();
    await lab?.kvmnet('net', 'stop', 'lan');
    await lab?.destroy();
  });

  test("gets a lease from the LAN's DHCP server and serves the LAN directly", async () => {
    assert.ok(guest);
    const lease = await guest.lease();
    const last = Number(lease.ip.split('.')[3]);
    assert.match(lease.ip, /^192\.168\.100\.\d+$/);
    assert.ok(last >= 100 && last <= 199, `${lease.ip} is from the LAN's pool`);
    assert.equal(lease.router, LAN_ROUTER);
    // The guest starts its web server right after it reports the lease.
    let page: string | null = null;
    for (let i = 0; i < 20 && !page; i++) {
      page = await lab.fetch(lab.lanNs, `http://${lease.ip}/`, 2);
      if (!page) await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(page ?? '', /hello from kvm6/);
    const link = await must('ip', ['-n', lab.hostNs, '-o', 'link', 'show', 'master', 'virbr1']);
    assert.match(link, /eth1/);
  });
});
