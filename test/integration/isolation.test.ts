// Issue 8, point 4: guests of two kvmnet networks cannot reach each other (ping, TCP, both ways),
// unless both networks are routed and peered; each still reaches its gateway and, NAT, the LAN.
// One lab with six networks and a namespace guest on each (cases in test/lib/cases/isolation.ts).
// The lab's host check (test/lib/hostcheck.ts) adds that nothing else on the host changed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ESTABLISHED_FLOW_CASES,
  ISOLATION_NETS,
  ISOLATION_PAIR_CASES,
  ISOLATION_PROBE_CASES,
  PEER_INPUT_CASES,
} from '../lib/cases/isolation.js';
import { join } from 'node:path';
import { LAN_ROUTER, Lab, REPO } from '../lib/lab.js';
import { must, Tracked } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

const UDP_ECHO = join(REPO, 'test/fixtures/udp-echo.mjs');

interface Guest {
  ns: string;
  ip: string;
  gateway: string;
}

describe('isolation between networks', () => {
  let lab: Lab;
  const guests = new Map<string, Guest>();

  before(async () => {
    lab = await Lab.create('iso');
    await lab.server(lab.lanNs, 8080, 'lan');
    for (const n of ISOLATION_NETS) {
      const args = ['net', 'define', n.name, '--mode', n.mode, '--subnet', `10.${n.n}.0.0/24`];
      for (const p of n.peers ?? []) args.push('--peer', p);
      await lab.kvmnetOk(...args, '--bridge', `kvi${n.n}`);
      await lab.kvmnetOk('net', 'start', n.name);
    }
    await Promise.all(
      ISOLATION_NETS.map(async (n) => {
        const ns = await lab.addGuest(`g${n.n}`, `kvi${n.n}`);
        const lease = await lab.dhcp(ns, `g${n.n}`);
        // An isolated network hands out no default route: set one, so only the firewall decides.
        if (lease.router === 'none')
          await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', `10.${n.n}.0.1`]);
        await lab.server(ns, 8080, n.name);
        guests.set(n.name, { ns, ip: lease.ip, gateway: `10.${n.n}.0.1` });
      }),
    );
  });
  after(async () => {
    await lab?.destroy();
  });

  const g = (name: string): Guest => {
    const x = guests.get(name);
    if (!x) throw new Error(`no guest on ${name}`);
    return x;
  };
  const ping = async (from: Guest, to: string): Promise<boolean> =>
    (await lab.exec(from.ns, ['busybox', 'ping', '-c', '1', '-W', '2', to])).code === 0;

  test('positive controls: every guest reaches its gateway, the host reaches every guest, NAT guests reach the LAN', async () => {
    await Promise.all(
      ISOLATION_NETS.map(async (n) => {
        const x = g(n.name);
        assert.ok(await ping(x, x.gateway), `${n.name} guest pings its gateway`);
        assert.equal(await lab.fetch(lab.hostNs, `http://${x.ip}:8080/`), `${n.name} sees ${x.gateway}\n`);
        if (n.mode === 'nat')
          assert.match((await lab.fetch(x.ns, `http://${LAN_ROUTER}:8080/`)) ?? '', /^lan sees /);
      }),
    );
  });

  for (const c of ISOLATION_PAIR_CASES) {
    test(`${c.why}: ${c.a} and ${c.b} ${c.reach ? 'reach' : 'do not reach'} each other`, async () => {
      const results = await Promise.all(
        [
          [c.a, c.b],
          [c.b, c.a],
        ].flatMap(([from = '', to = '']) =>
          ISOLATION_PROBE_CASES.map(async (probe) => {
            const src = g(from);
            const dst = g(to);
            const ok =
              probe === 'ping'
                ? await ping(src, dst.ip)
                : (await lab.fetch(src.ns, `http://${dst.ip}:8080/`, 2)) === `${to} sees ${src.ip}\n`;
            return { what: `${probe} ${from} -> ${to}`, ok };
          }),
        ),
      );
      for (const r of results) assert.equal(r.ok, c.reach, r.what);
    });
  }

  test('the table: a between chain that drops, jumped to by every network, every bridge in net_bridges, the one peer pair both ways', async () => {
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    for (const n of ISOLATION_NETS)
      assert.match(
        nft,
        new RegExp(
          `chain net_${n.name}_in \\{\\n\\s*iifname "kvi${n.n}" accept [^\\n]*\\n\\s*iifname @net_bridges jump between `,
        ),
      );
    assert.match(nft, /chain between \{[^}]*drop comment/s);
    const peers = /set net_peers \{[^}]*elements = \{([^}]*)\}/s.exec(nft)?.[1] ?? '';
    const pairs = [...peers.matchAll(/"(\S+)" \. "(\S+)"/g)].map((m) => `${m[1]}>${m[2]}`).sort();
    const self = ISOLATION_NETS.map((n) => `kvi${n.n}>kvi${n.n}`);
    assert.deepEqual(pairs, [...self, 'kvi45>kvi46', 'kvi46>kvi45'].sort());
  });

  // Conntrack does not look at interfaces: an accept of established traffic before the isolation
  // check would let such a flow (or a guest's packet spoofed to match one) cross between networks.
  test('a flow established between two networks while the forward hook had no rules is dropped once the rules are back', async () => {
    const pairs = ESTABLISHED_FLOW_CASES.map((c) => [c.from, c.to] as const);
    const udp = (ns: string, ...args: string[]): Promise<string> =>
      lab.exec(ns, [process.execPath, UDP_ECHO, ...args]).then((r) => r.stdout.trim());
    /** A UDP echo server on port 9000 in guest `name`'s namespace. */
    const server = async (name: string): Promise<void> => {
      const t = Tracked.start('ip', [
        'netns',
        'exec',
        g(name).ns,
        process.execPath,
        UDP_ECHO,
        'server',
        '9000',
      ]);
      lab.tracked.push(t);
      await t.waitFor(/listening/);
    };
    for (const [, to] of pairs) await server(to);
    // Without kvmnet's forward rules the host forwards anything: each flow is established in conntrack.
    await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'flush', 'chain', 'inet', 'kvmnet', 'forward']);
    try {
      for (const [from, to] of pairs)
        assert.equal(
          await udp(g(from).ns, 'client', g(to).ip, '9000', '40000'),
          'reply',
          `${from} -> ${to} without rules`,
        );
    } finally {
      await lab.kvmnetOk('repair');
    }
    for (const [from, to] of pairs)
      assert.equal(
        await udp(g(from).ns, 'client', g(to).ip, '9000', '40000'),
        'none',
        `${from} -> ${to}, same flow`,
      );
    // The control: the peered pair still talks over a flow of its own.
    await server('rt3');
    assert.equal(await udp(g('rt2').ns, 'client', g('rt3').ip, '9000', '40000'), 'reply', 'rt2 -> rt3');
  });

  test('stopping a peered network removes its pairs; starting it again brings them back', async () => {
    await lab.kvmnetOk('net', 'stop', 'rt3');
    const nft = await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'list',
      'set',
      'inet',
      'kvmnet',
      'net_peers',
    ]);
    assert.doesNotMatch(nft, /kvi46/);
    await lab.kvmnetOk('net', 'start', 'rt3');
    // The guest's veth was unplugged with the old bridge; plug it into the new one.
    const links = JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show'])) as Array<{
      ifname: string;
      master?: string;
    }>;
    for (const l of links.filter((x) => /^vg\d+$/.test(x.ifname) && x.master === undefined))
      await must('ip', ['-n', lab.hostNs, 'link', 'set', l.ifname, 'master', 'kvi46']);
    await lab.waitUp(g('rt3').ns, 'eth0');
    assert.ok(await ping(g('rt3'), g('rt2').ip), 'rt3 reaches rt2 again');
    assert.ok(!(await ping(g('rt3'), g('rt1').ip)), 'but still not rt1');
  });

  test('export and dumpxml keep peers', async () => {
    const yaml = await lab.kvmnetOk('export');
    assert.match(yaml, /rt3:\n(?: {4}.*\n)*? {4}peers:\n {6}- rt2\n/);
    const xml = await lab.kvmnetOk('net', 'dumpxml', 'rt3');
    assert.match(xml, /peers="rt2"/);
  });

  for (const c of PEER_INPUT_CASES) {
    test(`refused: ${c.args.slice(-2).join(' ')} (${c.args[4] ?? ''})`, async () => {
      await assertRefused(lab, c.args, c.error);
    });
  }
});
