// table bridge kvmnet (anti-spoofing): drift detection from `nft -j` output, the isolation lines
// planPorts adds, and the dnsmasq lease hook run against a real table in a throwaway namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { planPorts, type Observed } from '../../src/engine/plan.js';
import type { LinkInfo } from '../../src/host/host.js';
import type { PortDef } from '../../src/model/port.js';
import {
  bridgeDiff,
  bridgeDrift,
  parseBridgeTable,
  portChain,
  portRules,
  portTag,
  protSet,
  renderBridgeTable,
  renderBridgeUpdate,
  renderLeaseHook,
  type BridgePort,
} from '../../src/render/nft-bridge.js';

const L3 = { bridge: 'br9', protected: ['10.9.0.1', '10.9.0.50'] };
const PORTS: BridgePort[] = [
  { tap: 'vnet0', mac: '52:54:00:00:00:01', ip: '10.9.0.50', l3: L3 },
  { tap: 'vnet1', mac: '52:54:00:00:00:02', l3: L3 },
];

/** n ports with reservations on one network (vnet0 … vnet<n-1>). */
function reserved(n: number): BridgePort[] {
  const ips = Array.from({ length: n }, (_, i) => `10.8.${Math.floor(i / 200)}.${(i % 200) + 2}`);
  const l3 = { bridge: 'br8', protected: ['10.8.9.1', ...ips].sort() };
  return ips.map((ip, i) => ({
    tap: `vnet${i}`,
    mac: `52:54:00:08:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
    ip,
    l3,
  }));
}

/** What `nft -j list table bridge kvmnet` shows for the table as rendered (rules as comments only). */
function listing(ports: BridgePort[]): { nftables: Array<Record<string, Record<string, unknown>>> } {
  const items: Array<Record<string, Record<string, unknown>>> = [
    { table: { family: 'bridge', name: 'kvmnet' } },
    { set: { name: 'lease_ip', type: ['ether_addr', 'ipv4_addr'] } },
    { set: { name: 'lease_mac', type: 'ether_addr' } },
  ];
  const sets = new Map<string, string[]>();
  for (const p of ports) if (p.l3) sets.set(protSet(p.l3.bridge), p.l3.protected);
  for (const [name, elem] of sets) items.push({ set: { name, type: 'ipv4_addr', elem } });
  items.push({
    map: {
      name: 'ports',
      type: 'ifname',
      map: 'verdict',
      elem: ports.map((p) => [p.tap, { jump: { target: portChain(p.tap) } }]),
    },
  });
  items.push({
    chain: { name: 'prerouting', type: 'filter', hook: 'prerouting', prio: -200, policy: 'accept' },
  });
  const pre = /comment "([^"]+)"/.exec(
    renderBridgeTable(ports, [])
      .split('\n')
      .find((l) => l.includes('vmap')) ?? '',
  );
  items.push({ rule: { chain: 'prerouting', comment: pre?.[1] } });
  for (const p of ports) {
    items.push({ chain: { name: portChain(p.tap) } });
    for (let i = portRules(p).length; i > 0; i--)
      items.push({ rule: { chain: portChain(p.tap), comment: portTag(p) } });
  }
  return { nftables: items };
}

describe('table bridge kvmnet drift', () => {
  test('a table as rendered has no drift', () => {
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(listing(PORTS))), []);
    const many = reserved(50);
    assert.deepEqual(bridgeDrift(many, parseBridgeTable(listing(many))), []);
  });
  test('a port with a reservation has no claim rule; one without refers to the set of its network', () => {
    const [a, b] = PORTS;
    assert.ok(a && b);
    assert.ok(!portRules(a).some((r) => r.includes('@prot_')));
    assert.deepEqual(
      portRules(b).filter((r) => r.includes('@prot_br9')),
      ['ether type arp arp saddr ip @prot_br9 counter drop', 'ether type ip ip saddr @prot_br9 counter drop'],
    );
    assert.match(
      renderBridgeTable(PORTS, []),
      /set prot_br9 \{\n\t\ttype ipv4_addr\n\t\telements = \{ 10\.9\.0\.1, 10\.9\.0\.50 \}/,
    );
  });
  test('a missing table or a wrong base chain is rebuilt; a table nobody needs is removed', () => {
    const none = bridgeDiff(PORTS, parseBridgeTable(null));
    assert.equal(none.whole, 'rebuild');
    assert.match(none.why.join(), /table bridge kvmnet is missing/);
    const l = listing(PORTS);
    const pre = l.nftables.find((x) => x.rule?.chain === 'prerouting');
    assert.ok(pre?.rule);
    pre.rule.comment = 'kvmnet#0';
    assert.equal(bridgeDiff(PORTS, parseBridgeTable(l)).whole, 'rebuild');
    const gone = bridgeDiff([], parseBridgeTable(listing(PORTS)));
    assert.equal(gone.whole, 'remove');
    assert.match(gone.why.join(), /no longer needed/);
    assert.deepEqual(bridgeDrift([], parseBridgeTable(null)), []);
    assert.equal(renderBridgeUpdate([], gone, []), 'table bridge kvmnet\ndelete table bridge kvmnet\n');
  });
  test('a changed or missing rule refills only that chain', () => {
    const l = listing(PORTS);
    const r = l.nftables.filter((x) => x.rule?.chain === 'port_vnet1');
    l.nftables.splice(l.nftables.indexOf(r[0] ?? {}), 1);
    const d = bridgeDiff(PORTS, parseBridgeTable(l));
    assert.equal(d.whole, null);
    assert.deepEqual(
      d.fill.map((p) => p.tap),
      ['vnet1'],
    );
    assert.match(d.why.join(), /chain port_vnet1 has \d+ rules, \d+ of the \d+ expected/);
    const text = renderBridgeUpdate(PORTS, d, [{ mac: '52:54:00:00:00:02', ip: '10.9.0.77' }]);
    assert.match(text, /^add chain bridge kvmnet port_vnet1\nflush chain bridge kvmnet port_vnet1\n/);
    assert.doesNotMatch(text, /port_vnet0|delete/);
    // The refilled chain of a port without a reservation gets its current lease back.
    assert.match(text, /add element bridge kvmnet lease_ip \{ 52:54:00:00:00:02 \. 10\.9\.0\.77 \}/);
  });
  test('one port more or less: a transaction that names only that port, its element and its address', () => {
    const ports = reserved(200);
    const last = ports[199];
    assert.ok(last?.ip);
    const ip = last.ip;
    const before = ports.slice(0, 199).map((p) => ({
      ...p,
      l3: { bridge: 'br8', protected: p.l3?.protected.filter((a) => a !== ip) ?? [] },
    }));
    for (const [from, to, verb] of [
      [before, ports, 'add'],
      [ports, before, 'delete'],
    ] as const) {
      const d = bridgeDiff(to, parseBridgeTable(listing(from)));
      assert.equal(d.whole, null);
      const text = renderBridgeUpdate(to, d, []);
      const named = new Set([...text.matchAll(/port_vnet\d+/g)].map((m) => m[0]));
      assert.deepEqual([...named], ['port_vnet199']);
      assert.match(
        text,
        new RegExp(`${verb} element bridge kvmnet prot_br8 \\{ ${ip.replace(/\./g, '\\.')} \\}`),
      );
      assert.match(text, new RegExp(`${verb} element bridge kvmnet ports \\{ "vnet199"`));
      assert.ok(text.split('\n').length < 30, text);
    }
  });
  test('the table grows linearly with the ports', () => {
    const size = (n: number): number => renderBridgeTable(reserved(n), []).length;
    assert.ok(size(200) < 200 * 2048, `${size(200)} bytes for 200 ports`);
    assert.ok(size(400) < 2.2 * size(200), `${size(400)} bytes for 400 ports, ${size(200)} for 200`);
  });
  test('no checked port: the transaction only removes the table; odd names are never rendered', () => {
    assert.equal(renderBridgeTable([], []), 'table bridge kvmnet\ndelete table bridge kvmnet\n');
    const odd = renderBridgeTable([{ tap: 'a"; flush ruleset', mac: '52:54:00:00:00:09' }], []);
    assert.equal(odd, 'table bridge kvmnet\ndelete table bridge kvmnet\n');
  });
});

describe('planPorts and isolation', () => {
  const port: PortDef = {
    name: 'vnet4',
    network: 'n',
    vm: 'v',
    index: 0,
    mac: '52:54:00:00:00:04',
    model: 'virtio-net-pci',
    link: 'up',
    isolated: true,
  };
  const link = (o: Partial<LinkInfo>): Observed =>
    ({
      links: new Map([
        [
          'vnet4',
          {
            ifname: 'vnet4',
            ifindex: 9,
            address: 'fe:54:00:00:00:04',
            flags: ['UP'],
            operstate: 'UP',
            mtu: 1500,
            ...o,
          },
        ],
      ]),
    }) as unknown as Observed;
  test('an isolated port plugged without isolation gets it; one that has it gets nothing', () => {
    const steps = planPorts([port], 'br9', link({ master: 'br9' }));
    assert.deepEqual(steps[0]?.kind === 'ip' && steps[0].lines, [
      'link set dev vnet4 type bridge_slave isolated on',
    ]);
    assert.deepEqual(planPorts([port], 'br9', link({ master: 'br9', isolated: true })), []);
  });
  test('isolation turned off is cleared; a stopped network sets none', () => {
    const plain = { ...port, isolated: false };
    const steps = planPorts([plain], 'br9', link({ master: 'br9', isolated: true }));
    assert.deepEqual(steps[0]?.kind === 'ip' && steps[0].lines, [
      'link set dev vnet4 type bridge_slave isolated off',
    ]);
    assert.deepEqual(planPorts([port], null, link({})), []);
  });
});

describe('the dnsmasq lease hook against a real table', () => {
  const ns = `ut-${process.pid}-spoof`;
  const dir = mkdtempSync(join(tmpdir(), 'kvmnet-hook-'));
  const hook = join(dir, 'lease-hook');
  const sh = (args: string[], env: NodeJS.ProcessEnv = {}): string => {
    const r = spawnSync('ip', ['netns', 'exec', ns, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const set = (name: string): string => sh(['nft', 'list', 'set', 'bridge', 'kvmnet', name]);

  before(() => {
    assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
    writeFileSync(hook, renderLeaseHook(), { mode: 0o755 });
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: renderBridgeTable(PORTS, []),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('add pins the MAC to the address; old (renewal, dnsmasq start) keeps it; del unpins', () => {
    const mac = '52:54:00:00:00:02';
    sh([hook, 'add', mac, '10.9.0.77', 'kvm2']);
    assert.match(set('lease_ip'), /52:54:00:00:00:02 \. 10\.9\.0\.77/);
    assert.match(set('lease_mac'), /52:54:00:00:00:02/);
    sh([hook, 'old', mac, '10.9.0.77', 'kvm2']);
    assert.match(set('lease_ip'), /52:54:00:00:00:02 \. 10\.9\.0\.77/);
    // A second address for the MAC (the guest moved): dropping the first keeps the MAC pinned.
    sh([hook, 'add', mac, '10.9.0.78', 'kvm2']);
    sh([hook, 'del', mac, '10.9.0.77', 'kvm2']);
    assert.doesNotMatch(set('lease_ip'), /10\.9\.0\.77/);
    assert.match(set('lease_mac'), /52:54:00:00:00:02/);
    sh([hook, 'del', mac, '10.9.0.78', 'kvm2']);
    assert.doesNotMatch(set('lease_ip'), /52:54/);
    assert.doesNotMatch(set('lease_mac'), /52:54/);
  });

  test('an update applied to the real table leaves no drift (one port added, then removed)', () => {
    const list = (): unknown => JSON.parse(sh(['nft', '-j', 'list', 'table', 'bridge', 'kvmnet'])) as unknown;
    const apply = (text: string): void => {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stderr}\n${text}`);
    };
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(list())), []);
    const l3 = { bridge: 'br9', protected: [...L3.protected, '10.9.0.60'] };
    const more: BridgePort[] = [
      ...PORTS.map((p) => ({ ...p, l3 })),
      { tap: 'vnet2', mac: '52:54:00:00:00:03', ip: '10.9.0.60', l3 },
      { tap: 'tap-x.1', mac: '52:54:00:00:00:04', l3: { bridge: 'br-7', protected: ['10.7.0.1'] } },
    ];
    for (const ports of [more, PORTS]) {
      const d = bridgeDiff(ports, parseBridgeTable(list()));
      assert.equal(d.whole, null);
      apply(renderBridgeUpdate(ports, d, []));
      assert.deepEqual(bridgeDrift(ports, parseBridgeTable(list())), []);
    }
  });

  test('arguments that are not a MAC and an address change nothing and never fail dnsmasq', () => {
    sh([hook, 'add', '52:54:00:00:00:02;reboot', '10.9.0.5']);
    sh([hook, 'add', '52:54:00:00:00:02', '10.9.0.5 }; flush ruleset; #']);
    sh([hook, 'tftp', '1234', '10.9.0.5', '/file']);
    assert.doesNotMatch(set('lease_ip'), /52:54/);
  });
});
