// Issue 5: bridged networks in a namespace lab whose LAN namespace runs the router and its own
// DHCP server. The host's eth1 holds 192.168.100.239/24 with a default route via .254 metric 100.
import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';
import { must, run } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

/** eth1 as `ip -json` reports it: link (MAC, MTU, flags, master), addresses, routes. */
async function uplinkState(lab: Lab): Promise<unknown> {
  const link = JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', 'eth1'])) as Array<
    Record<string, unknown>
  >;
  const addrs = JSON.parse(
    await must('ip', ['-n', lab.hostNs, '-json', '-4', 'addr', 'show', 'eth1']),
  ) as Array<{ addr_info: unknown[] }>;
  const routes = JSON.parse(
    await must('ip', ['-n', lab.hostNs, '-json', '-4', 'route', 'show']),
  ) as unknown[];
  const l = link[0] ?? {};
  return {
    address: l.address,
    mtu: l.mtu,
    flags: l.flags,
    master: l.master,
    operstate: l.operstate,
    addrs: addrs[0]?.addr_info,
    routes,
  };
}

describe('bridged networks', () => {
  let lab: Lab;
  let baseline: unknown;

  before(async () => {
    lab = await Lab.create('brg');
    // The LAN's own DHCP server, like an office router's.
    lab.lanDhcp();
    await lab.server(lab.lanNs, 8080, 'lan');
    // One default route, with a metric: it must come back exactly, metric included.
    await must('ip', ['-n', lab.hostNs, 'route', 'del', 'default']);
    await must('ip', ['-n', lab.hostNs, 'route', 'add', 'default', 'via', LAN_ROUTER, 'metric', '100']);
    await lab.acceptHostChanges(); // the host's route with a metric: it must come back so
    baseline = await uplinkState(lab);
  });
  after(async () => {
    await lab.destroy();
  });

  test('start keeps the host on the LAN (a ping every 100 ms loses at most a few) and moves address and route (1)', async () => {
    await lab.kvmnetOk('net', 'define', 'lan', '--mode', 'bridge', '--uplink', 'eth1', '--bridge', 'virbr1');
    const pinger = run(
      'ip',
      ['netns', 'exec', lab.hostNs, 'ping', '-n', '-i', '0.1', '-c', '40', '-W', '1', LAN_ROUTER],
      { timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 1000));
    await lab.kvmnetOk('net', 'start', 'lan');
    const p = await pinger;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(p.stdout);
    assert.ok(m, p.stdout);
    const lost = Number(m[1]) - Number(m[2]);
    assert.ok(lost <= 3, `lost ${lost} of ${m[1]} pings during the take-over`);
    const addr = await must('ip', ['-n', lab.hostNs, '-4', '-o', 'addr', 'show', 'virbr1']);
    assert.match(addr, /inet 192\.168\.100\.239\/24/);
    const routes = await must('ip', ['-n', lab.hostNs, 'route']);
    assert.match(routes, /^default via 192\.168\.100\.254 dev virbr1 metric 100 $/m);
    const br = JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', 'virbr1'])) as Array<{
      address: string;
    }>;
    assert.equal(br[0]?.address, (baseline as { address: string }).address, "the bridge carries eth1's MAC");
    assert.equal(await lab.fetch(lab.hostNs, `http://${LAN_ROUTER}:8080/`), `lan sees ${HOST_LAN_IP}\n`);
  });

  test("a guest on the bridge gets its address from the LAN's DHCP server and is reached directly (2)", async () => {
    const port = await lab.kvmnetJson<{ port: { name: string; mac: string } }>(
      'port',
      'add',
      'lan',
      '--vm',
      'lanvm',
    );
    const g = await lab.addGuest('g1', 'virbr1');
    await must('ip', ['-n', g, 'link', 'set', 'eth0', 'address', port.port.mac]);
    const lease = await lab.dhcp(g, 'lanvm');
    const last = Number(lease.ip.split('.')[3]);
    assert.match(lease.ip, /^192\.168\.100\.\d+$/);
    assert.ok(last >= 100 && last <= 199, `${lease.ip} comes from the LAN's pool`);
    assert.equal(lease.router, LAN_ROUTER);
    await lab.server(g, 80, 'lanvm');
    assert.equal(
      await lab.fetch(lab.lanNs, `http://${lease.ip}/`),
      `lanvm sees ${LAN_ROUTER}\n`,
      'no NAT in between',
    );
    const leases = await lab.kvmnetOk('leases', 'lan');
    assert.match(leases, /is bridged: its guests' leases are held by the LAN's DHCP server/);
    // show names the guest's address as the bridge saw it (the neighbour table).
    await run('ip', ['netns', 'exec', lab.hostNs, 'ping', '-c', '1', '-W', '1', lease.ip]);
    const show =
      await lab.kvmnetJson<
        Array<{ network: string; ports: Array<{ vm: string; ip: string | null; ipSource: string | null }> }>
      >('show');
    const p = show.find((n) => n.network === 'lan')?.ports.find((x) => x.vm === 'lanvm');
    assert.deepEqual(p && [p.ip, p.ipSource], [lease.ip, 'neighbour']);
    await lab.kvmnetOk('port', 'del', 'lanvm');
  });

  test("persist prints the seed's ifcfg pair, and --write --root writes files with their modes (6)", async () => {
    const out = await lab.kvmnetOk('net', 'persist', 'lan', '--format', 'ifcfg');
    assert.match(out, /^# \/etc\/sysconfig\/network-scripts\/ifcfg-virbr1 \(mode 644\)$/m);
    for (const line of [
      'DEVICE=virbr1',
      'TYPE=Bridge',
      'IPADDR=192.168.100.239',
      'PREFIX=24',
      'GATEWAY=192.168.100.254',
      'DEVICE=eth1',
      'BRIDGE=virbr1',
    ]) {
      assert.match(out, new RegExp(`^${line}$`, 'm'));
    }
    const root = join(lab.dir, 'image');
    const w = await lab.kvmnetOk('net', 'persist', 'lan', '--format', 'netplan', '--write', '--root', root);
    assert.equal(w, `wrote ${root}/etc/netplan/60-kvmnet-virbr1.yaml\n`);
    const st = await stat(join(root, 'etc/netplan/60-kvmnet-virbr1.yaml'));
    assert.equal(st.mode & 0o777, 0o600);
    const r = await lab.kvmnet('net', 'persist', 'lan', '--format', 'yast');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: format "yast" is not known$/m);
  });

  test('stop restores eth1 exactly (3)', async () => {
    await lab.kvmnetOk('net', 'stop', 'lan');
    assert.deepEqual(await uplinkState(lab), baseline);
    const links = await must('ip', ['-n', lab.hostNs, '-br', 'link']);
    assert.doesNotMatch(links, /virbr1/);
  });

  test('a LAN router that does not answer: start rolls back within the timeout and leaves eth1 exactly as before (4)', async () => {
    await must('ip', [
      'netns',
      'exec',
      lab.lanNs,
      'nft',
      'add table inet deaf; add chain inet deaf in { type filter hook input priority 0; policy accept; }; add rule inet deaf in icmp type echo-request drop',
    ]);
    try {
      const r = await lab.kvmnet('net', 'start', 'lan', '--confirm-timeout', '3');
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^error: start of bridged network "lan" failed: 192\.168\.100\.254 did not answer through virbr1 within 3 s \(\d+ pings; last: .*\); eth1 was put back as it was$/m,
      );
      assert.deepEqual(await uplinkState(lab), baseline);
      assert.deepEqual(
        (await lab.kvmnetJson<Array<{ name: string; state: string }>>('net', 'list')).map((n) => n.state),
        ['inactive'],
      );
    } finally {
      await must('ip', ['netns', 'exec', lab.lanNs, 'nft', 'delete table inet deaf']);
    }
  });

  test('dry-run prints the steps and changes nothing', async () => {
    const before = await lab.snapshot();
    const out = await lab.kvmnetOk('net', 'start', 'lan', '--dry-run');
    assert.match(out, /^ip link set dev eth1 master virbr1$/m);
    assert.match(out, /^ip route replace default via 192\.168\.100\.254 dev virbr1 metric 100$/m);
    assert.match(out, /^ping -c 1 -W 1 -I virbr1 192\.168\.100\.254/m);
    assert.deepEqual(await lab.snapshot(), before);
  });

  const refusals: Array<{
    name: string;
    args: string[];
    error: RegExp;
    env?: () => Promise<NodeJS.ProcessEnv>;
    setup?: () => Promise<void>;
    undo?: () => Promise<void>;
  }> = [
    {
      name: 'a wireless uplink',
      args: ['net', 'start', 'lan'],
      error: /uplink eth1 is a wireless NIC, which cannot be a bridge port/,
      env: async () => {
        const fake = join(lab.dir, 'fakesys');
        await mkdir(join(fake, 'class/net/eth1/wireless'), { recursive: true });
        await writeFile(join(fake, 'class/net/eth1/wireless/.keep'), '');
        return { KVMNET_SYSFS: fake };
      },
    },
    {
      name: 'an uplink that is already a bridge port',
      args: ['net', 'start', 'lan'],
      error: /uplink eth1 is already a port of br-other/,
      setup: async () => {
        await must('ip', ['-n', lab.hostNs, 'link', 'add', 'br-other', 'type', 'bridge']);
        await must('ip', ['-n', lab.hostNs, 'link', 'set', 'eth1', 'master', 'br-other']);
      },
      undo: async () => {
        await must('ip', ['-n', lab.hostNs, 'link', 'del', 'br-other']);
      },
    },
    {
      name: 'a missing uplink',
      args: ['net', 'define', 'x', '--mode', 'bridge', '--uplink', 'eth9'],
      error: /uplink eth9 does not exist on this host/,
    },
    {
      name: 'a subnet on a bridged network',
      args: ['net', 'define', 'x', '--mode', 'bridge', '--uplink', 'eth1', '--subnet', '10.0.0.0/24'],
      error: /--subnet does not apply to bridged network "x"/,
    },
    {
      name: 'DHCP options on a bridged network',
      args: [
        'net',
        'define',
        'x',
        '--mode',
        'bridge',
        '--uplink',
        'eth1',
        '--dhcp-range',
        '10.0.0.5-10.0.0.9',
      ],
      error: /--dhcp-range\/--no-dhcp does not apply to bridged network "x"/,
    },
    {
      name: 'no uplink',
      args: ['net', 'define', 'x', '--mode', 'bridge'],
      error: /bridged network "x" needs an uplink/,
    },
    {
      name: 'an uplink already used',
      args: ['net', 'define', 'x', '--mode', 'bridge', '--uplink', 'eth1'],
      error: /uplink eth1 is already the uplink of network "lan"/,
    },
    {
      name: 'a reservation on a bridged network',
      args: ['port', 'add', 'lan', '--vm', 'v', '--ip', '192.168.100.50'],
      error: /network "lan" is bridged: the LAN's DHCP server assigns/,
    },
    {
      name: 'a forward on a bridged network',
      args: ['forward', 'add', 'lan', 'tcp', '8080', '192.168.100.50:80'],
      error: /network "lan" is bridged: it takes no port forwards/,
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name} (exit 2, nothing changed) (5)`, async () => {
      await c.setup?.();
      try {
        const env = c.env ? await c.env() : {};
        await assertRefused(lab, c.args, c.error, { env, ignoreFiles: (f) => f.startsWith('/fakesys') });
      } finally {
        await c.undo?.();
      }
    });
  }
});
