// Issue 3 acceptance 1-5 with real QEMU guests (TCG) on ports made by kvmnet, in a namespace lab.
// Two guests are booted once and shared by every case of this file.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bootGuest, ensureGuestImage, type Guest } from '../lib/guest.js';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';

interface ShowJson {
  network: string;
  ports: Array<{
    port: string;
    id: string;
    vm: string;
    mac: string;
    ip: string | null;
    ipSource: string | null;
    link: string;
    plugged: boolean;
    carrier: boolean;
  }>;
}

/** Retries a check that waits on the network (ARP, bridge learning) for up to `tries` seconds. */
async function eventually(check: () => Promise<boolean>, tries = 10): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return false;
}

describe('VM ports with QEMU guests', () => {
  let lab: Lab;
  let kvm1: Guest;
  let kvm2: Guest;

  before(async () => {
    const image = ensureGuestImage();
    lab = await Lab.create('ports');
    await lab.kvmnetOk('up');
    await lab.server(lab.lanNs, 8080, 'lan');
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
    const p2 = await lab.kvmnetJson<{ port: { name: string; mac: string } }>(
      'port',
      'add',
      'default',
      '--vm',
      'kvm2',
    );
    await image;
    [kvm1, kvm2] = await Promise.all([
      bootGuest({ netns: lab.hostNs, tap: 'vnet0', mac: '52:54:00:60:e4:6a', hostname: 'kvm1' }),
      bootGuest({ netns: lab.hostNs, tap: p2.port.name, mac: p2.port.mac, hostname: 'kvm2' }),
    ]);
  });
  after(async () => {
    await Promise.all([kvm1?.kill(), kvm2?.kill()]);
    await lab?.destroy();
  });

  test('the guest gets exactly its reserved address, pings its gateway and reaches the LAN through NAT (1)', async () => {
    const lease = await kvm1.lease();
    assert.equal(lease.ip, '192.168.122.50');
    assert.equal(lease.router, '192.168.122.1');
    assert.equal((await kvm1.run('ping -c 1 -W 2 192.168.122.1')).code, 0);
    const page = await kvm1.run(`timeout 10 wget -qO- http://${LAN_ROUTER}:8080/`);
    assert.equal(page.code, 0, page.output);
    assert.match(page.output, new RegExp(`lan sees ${HOST_LAN_IP.replace(/\./g, '\\.')}`));
  });

  test('leases and show name the guest by VM with its IP, MAC and tap (2)', async () => {
    await kvm2.lease();
    const leases =
      await lab.kvmnetJson<
        Array<{ network: string; mac: string; ip: string; hostname: string; vm: string; port: string }>
      >('leases');
    const l1 = leases.find((l) => l.vm === 'kvm1');
    assert.deepEqual(
      l1 && { ip: l1.ip, mac: l1.mac, port: l1.port, hostname: l1.hostname, network: l1.network },
      {
        ip: '192.168.122.50',
        mac: '52:54:00:60:e4:6a',
        port: 'vnet0',
        hostname: 'kvm1',
        network: 'default',
      },
    );
    assert.ok(leases.some((l) => l.vm === 'kvm2' && l.port === 'vnet1'));
    const show = await lab.kvmnetJson<ShowJson[]>('show');
    const p1 = show[0]?.ports.find((p) => p.vm === 'kvm1');
    assert.deepEqual(p1, {
      port: 'vnet0',
      tap: 'kvmnet',
      id: 'kvm1/net0',
      vm: 'kvm1',
      mac: '52:54:00:60:e4:6a',
      tapMac: 'fe:54:00:60:e4:6a',
      ip: '192.168.122.50',
      ipSource: 'reservation',
      link: 'up',
      plugged: true,
      carrier: true,
    });
    const p2 = show[0]?.ports.find((p) => p.vm === 'kvm2');
    assert.equal(p2?.ipSource, 'lease', 'a port without reservation shows its leased address');
    const text = await lab.kvmnetOk('show');
    assert.match(text, /^ {2}vnet0 +kvm1\/net0 +52:54:00:60:e4:6a +192\.168\.122\.50 +up$/m);
  });

  test("port link down stops the guest's traffic; up restores it (3)", async () => {
    const ping = async (): Promise<boolean> =>
      (await lab.exec(lab.hostNs, ['busybox', 'ping', '-c', '1', '-W', '1', '192.168.122.50'])).code === 0;
    assert.ok(await eventually(ping), 'reachable before');
    await lab.kvmnetOk('port', 'link', 'kvm1', 'down');
    assert.equal(await ping(), false);
    assert.equal(await ping(), false);
    await lab.kvmnetOk('port', 'link', 'kvm1', 'up');
    assert.ok(await eventually(ping), 'reachable again after link up');
  });

  test('net stop + net start while the guest runs: the tap is re-plugged and traffic flows without restarting QEMU (4)', async () => {
    const pid = kvm1.pid;
    await lab.kvmnetOk('net', 'stop', 'default');
    assert.equal(
      (await kvm1.run('ping -c 1 -W 1 192.168.122.1')).code !== 0,
      true,
      'no gateway while stopped',
    );
    await lab.kvmnetOk('net', 'start', 'default');
    assert.ok(
      await eventually(async () => (await kvm1.run('ping -c 1 -W 1 192.168.122.1')).code === 0),
      'gateway reachable again',
    );
    const page = await kvm1.run(`timeout 10 wget -qO- http://${LAN_ROUTER}:8080/`);
    assert.match(page.output, /lan sees/);
    assert.equal(kvm1.pid, pid);
    assert.ok(kvm1.alive());
  });

  test('two guests on one network reach each other by name (5)', async () => {
    const byName = await kvm1.run('ping -c 1 -W 2 kvm2');
    assert.equal(byName.code, 0, byName.output);
    const back = await kvm2.run('ping -c 1 -W 2 kvm1');
    assert.equal(back.code, 0, back.output);
    assert.match(back.output, /192\.168\.122\.50/);
    const page = await kvm2.run('timeout 10 wget -qO- http://kvm1/');
    assert.match(page.output, /hello from kvm1/);
  });

  test('issue 4: a forward reaches the QEMU guest from the LAN, from the host, and from the other guest (hairpin)', async () => {
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '8080', 'kvm1:80');
    const url = `http://${HOST_LAN_IP}:8080/`;
    assert.match((await lab.fetch(lab.lanNs, url, 10)) ?? '', /hello from kvm1/);
    assert.match((await lab.fetch(lab.hostNs, url, 10)) ?? '', /hello from kvm1/);
    const hairpin = await kvm2.run(`timeout 10 wget -qO- ${url}`);
    assert.equal(hairpin.code, 0, hairpin.output);
    assert.match(hairpin.output, /hello from kvm1/);
  });
});
