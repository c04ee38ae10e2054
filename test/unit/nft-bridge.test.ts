// table bridge kvmnet (anti-spoofing): drift detection from `nft -j` output, the isolation lines
// planPorts adds, and the dnsmasq lease hook run against a real table in a throwaway namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { fcAssert } from '../lib/fc.js';
import { planPorts, type Observed } from '../../src/engine/plan.js';
import type { LinkInfo } from '../../src/host/host.js';
import type { PortDef } from '../../src/model/port.js';
import {
  bridgeDiff,
  bridgeDrift,
  bridgeElementDelta,
  expectedBridgeTable,
  renderElementDelta,
  netRules,
  parseBridgeTable,
  renderBridgeTable,
  renderBridgeUpdate,
  renderLeaseHook,
  type BridgePort,
} from '../../src/render/nft-bridge.js';

const L3 = { protected: ['10.9.0.1', '10.9.0.50'] };
const PORTS: BridgePort[] = [
  { tap: 'vnet0', mac: '52:54:00:00:00:01', ip: '10.9.0.50', bridge: 'br9', l3: L3 },
  { tap: 'vnet1', mac: '52:54:00:00:00:02', bridge: 'br9', l3: L3 },
];

/** n ports with reservations on one network (vnet0 … vnet<n-1>). */
function reserved(n: number): BridgePort[] {
  const ips = Array.from({ length: n }, (_, i) => `10.8.${Math.floor(i / 200)}.${(i % 200) + 2}`);
  const l3 = { protected: ['10.8.9.1', ...ips].sort() };
  const hex = (x: number): string => x.toString(16).padStart(2, '0');
  return ips.map((ip, i) => ({
    tap: `vnet${i}`,
    mac: `52:54:00:08:${hex(i >> 8)}:${hex(i & 255)}`,
    ip,
    bridge: 'br8',
    l3,
  }));
}

const ns = `ut-${process.pid}-spoof`;
const nft = (args: string[], input?: string): string => {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], {
    encoding: 'utf8',
    ...(input === undefined ? {} : { input }),
  });
  assert.equal(r.status, 0, `nft ${args.join(' ')}: ${r.stderr}\n${input ?? ''}`);
  return r.stdout;
};
/** The table as the kernel lists it. */
const listed = (): unknown => JSON.parse(nft(['-j', 'list', 'table', 'bridge', 'kvmnet'])) as unknown;

describe('table bridge kvmnet against a real table', () => {
  before(() => {
    assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  });
  after(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });
  test('a table as rendered has no drift', () => {
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(null)), ['table bridge kvmnet is missing']);
    nft(['-f', '-'], renderBridgeTable(PORTS, []));
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(listed())), []);
  });
  test('the rules are the same for every port; a network kvmnet addresses drops claims on its set', () => {
    assert.ok(
      netRules('br9', true).includes('ether type ip iifname != @reserved ip saddr @prot_br9 counter drop'),
    );
    assert.ok(!netRules('br9', false).some((r) => r.includes('@prot_')));
    assert.match(
      renderBridgeTable(PORTS, []),
      /set prot_br9 \{\n\t\ttype ipv4_addr\n\t\telements = \{ 10\.9\.0\.1,\n\t+ +10\.9\.0\.50 \}/,
    );
  });
  test('ports added and removed, a network more, a chain flushed: only what differs, and then no drift', () => {
    const more: BridgePort[] = [
      ...PORTS.map((p) => ({ ...p, l3: { protected: [...L3.protected, '10.9.0.60'] } })),
      {
        tap: 'vnet2',
        mac: '52:54:00:00:00:03',
        ip: '10.9.0.60',
        bridge: 'br9',
        l3: { protected: [...L3.protected, '10.9.0.60'] },
      },
      { tap: 'tap-x.1', mac: '52:54:00:00:00:04', bridge: 'br-7', l3: { protected: ['10.7.0.1'] } },
      { tap: 'vnet9', mac: '52:54:00:00:00:09', bridge: 'uplink0' },
    ];
    for (const ports of [more, PORTS]) {
      const d = bridgeDiff(ports, parseBridgeTable(listed()));
      assert.equal(d.whole, null, d.why.join('; '));
      nft(['-f', '-'], renderBridgeUpdate(ports, d, []));
      assert.deepEqual(bridgeDrift(ports, parseBridgeTable(listed())), []);
    }
    nft(['flush', 'chain', 'bridge', 'kvmnet', 'net_br9']);
    const d = bridgeDiff(PORTS, parseBridgeTable(listed()));
    assert.match(d.why.join(), /chain net_br9 has 0 rules, 0 of the 17 expected/);
    const text = renderBridgeUpdate(PORTS, d, []);
    assert.match(text, /^add chain bridge kvmnet net_br9\nflush chain bridge kvmnet net_br9\n/);
    assert.doesNotMatch(text, /element/);
    nft(['-f', '-'], text);
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(listed())), []);
  });
  test('a wrong base chain rebuilds the table; a table nobody needs is removed', () => {
    nft(['flush', 'chain', 'bridge', 'kvmnet', 'prerouting']);
    const d = bridgeDiff(PORTS, parseBridgeTable(listed()));
    assert.equal(d.whole, 'rebuild');
    nft(['-f', '-'], renderBridgeUpdate(PORTS, d, []));
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(listed())), []);
    const gone = bridgeDiff([], parseBridgeTable(listed()));
    assert.equal(gone.whole, 'remove');
    assert.match(gone.why.join(), /no longer needed/);
    assert.equal(renderBridgeUpdate([], gone, []), 'table bridge kvmnet\ndelete table bridge kvmnet\n');
    assert.deepEqual(bridgeDrift([], parseBridgeTable(null)), []);
  });
  test('one port more or less with 200 present: a transaction that names only that port and its address', () => {
    const ports = reserved(200);
    const last = ports[199];
    assert.ok(last?.ip);
    const ip = last.ip;
    const fewer = ports
      .slice(0, 199)
      .map((p) => ({ ...p, l3: { protected: p.l3?.protected.filter((a) => a !== ip) ?? [] } }));
    nft(['-f', '-'], renderBridgeTable(fewer, []));
    for (const [to, verb] of [
      [ports, 'add'],
      [fewer, 'delete'],
    ] as const) {
      const d = bridgeDiff(to, parseBridgeTable(listed()));
      assert.equal(d.whole, null);
      const text = renderBridgeUpdate(to, d, []);
      assert.deepEqual([...new Set([...text.matchAll(/vnet\d+/g)].map((m) => m[0]))], ['vnet199']);
      assert.match(
        text,
        new RegExp(`${verb} element bridge kvmnet prot_br8 \\{ ${ip.replace(/\./g, '\\.')} \\}`),
      );
      assert.match(text, new RegExp(`${verb} element bridge kvmnet ports \\{ "vnet199"`));
      assert.ok(text.split('\n').length <= 7, text);
      nft(['-f', '-'], text);
      assert.deepEqual(bridgeDrift(to, parseBridgeTable(listed())), []);
    }
    nft(['delete', 'table', 'bridge', 'kvmnet']);
  });
  test('a port delta changes the elements the full diff would, and its undo puts them back', () => {
    const ports = reserved(200);
    const ip = ports[199]?.ip ?? '';
    const fewer = ports
      .slice(0, 199)
      .map((p) => ({ ...p, l3: { protected: p.l3?.protected.filter((a) => a !== ip) ?? [] } }));
    const l7 = { protected: ['10.7.0.1'] };
    // A port of another network with the MAC of PORTS[1]: its chaddr element stays when that one goes.
    const twin: BridgePort = { tap: 'vnet70', mac: '52:54:00:00:00:02', bridge: 'br7', l3: l7 };
    const br7: BridgePort = { tap: 'vnet71', mac: '52:54:00:00:07:01', bridge: 'br7', l3: l7 };
    const unreserved: BridgePort = { tap: 'vnet9', mac: '52:54:00:00:00:09', bridge: 'br9', l3: L3 };
    const cases: Array<[string, BridgePort[], BridgePort[]]> = [
      ['a reserved port added to 199', fewer, ports],
      ['a reserved port removed from 200', ports, fewer],
      ['a port without reservation added', PORTS, [...PORTS, unreserved]],
      ['a port whose MAC another network has removed', [...PORTS, twin, br7], [...PORTS, br7]],
      [
        'a port removed whose MAC another port keeps',
        [...PORTS, twin, br7],
        [twin, br7, ...PORTS.slice(0, 1)],
      ],
    ];
    for (const [name, before, after] of cases) {
      nft(['-f', '-'], renderBridgeTable(before, []));
      const full = bridgeDiff(after, parseBridgeTable(listed()));
      const d = bridgeElementDelta(before, after);
      assert.ok(d, name);
      assert.deepEqual([d.elemAdd, d.elemDel], [full.elemAdd, full.elemDel], name);
      const { script, undo } = renderElementDelta(d, []);
      nft(['-f', '-'], script);
      assert.deepEqual(bridgeDrift(after, parseBridgeTable(listed())), [], name);
      nft(['-f', '-'], undo);
      assert.deepEqual(bridgeDrift(before, parseBridgeTable(listed())), [], `${name}: undone`);
      nft(['delete', 'table', 'bridge', 'kvmnet']);
    }
    // A network's first or last checked port makes or drops its chain and set: not a delta.
    assert.equal(bridgeElementDelta(PORTS, [...PORTS, br7]), null);
    assert.equal(bridgeElementDelta([...PORTS, br7], PORTS), null);
    assert.equal(bridgeElementDelta([], PORTS), null);
    assert.equal(bridgeElementDelta(PORTS.slice(0, 1), []), null);
    // No checked port before or after (a libvirt port without its tap yet): no table, nothing to do.
    assert.deepEqual(bridgeElementDelta([], []), { elemAdd: [], elemDel: [], added: [] });
  });
  // The delta is computed from the ports that differ, not from every port's elements: it must still
  // change exactly what the full diff against the table as applied for `before` changes, and be
  // null exactly where that diff does more than elements (a chain or prot_ set comes or goes).
  test('property: a port delta equals the full diff of any two port lists, or is null where that diff does more', () => {
    const taps = fc.constantFrom('vnet0', 'vnet1', 'vnet2', 'vnet3', 'vnet4', 'vnet5');
    const macs = fc.constantFrom('52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03');
    const ips = fc.option(fc.constantFrom('10.9.0.5', '10.9.0.6', '10.9.0.7'), { nil: undefined });
    const prot = fc.option(
      fc.uniqueArray(fc.constantFrom('10.9.0.1', '10.9.0.5', '10.9.0.6'), { maxLength: 3 }),
      {
        nil: undefined,
      },
    );
    // Each network's l3 (or none) is shared by its ports, as bridgePorts builds them.
    const side = fc
      .record({
        l3: fc.tuple(prot, prot, prot),
        ports: fc.uniqueArray(
          fc.record({ tap: taps, mac: macs, ip: ips, net: fc.integer({ min: 0, max: 2 }) }),
          { selector: (p) => p.tap, maxLength: 6 },
        ),
      })
      .map(({ l3, ports }) =>
        ports.map((p): BridgePort => {
          const l = l3[p.net];
          return {
            tap: p.tap,
            mac: p.mac,
            bridge: `br${p.net}`,
            ...(p.ip === undefined ? {} : { ip: p.ip }),
            ...(l === undefined ? {} : { l3: { protected: l } }),
          };
        }),
      );
    fcAssert(
      fc.property(side, side, (before, after) => {
        const d = bridgeElementDelta(before, after);
        const full = bridgeDiff(after, expectedBridgeTable(before));
        const onlyElements =
          before.length > 0 === after.length > 0 &&
          full.whole === null &&
          full.fill.length === 0 &&
          full.drop.length === 0 &&
          full.newSets.length === 0 &&
          full.goneSets.length === 0;
        if (!onlyElements) return d === null;
        assert.ok(d);
        // Set by set (their order in the transaction does not matter; each set's elements are sorted).
        const bySet = (x: Array<[string, string[]]>): Record<string, string[]> => Object.fromEntries(x);
        assert.deepEqual([bySet(d.elemAdd), bySet(d.elemDel)], [bySet(full.elemAdd), bySet(full.elemDel)]);
        assert.deepEqual(d.added.map((p) => p.tap).sort(), full.added.map((p) => p.tap).sort());
        return true;
      }),
      2000,
    );
  });
  test('the table as applied, from the ports alone, is what the kernel lists; a stop planned against it applies', () => {
    const l7 = { protected: ['10.7.0.1', '10.7.0.9'] };
    const br7: BridgePort[] = [
      { tap: 'vnet71', mac: '52:54:00:00:07:01', ip: '10.7.0.9', bridge: 'br7', l3: l7 },
      { tap: 'vnet72', mac: '52:54:00:00:00:02', bridge: 'br7', l3: l7 },
    ];
    // A bridged network's port (no l3) beside them.
    const lan: BridgePort = { tap: 'vnet80', mac: '52:54:00:00:08:01', bridge: 'virbr1' };
    const byName = <T>(a: [string, T], b: [string, T]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const sorted = (o: ReturnType<typeof parseBridgeTable>): unknown => ({
      table: o.table,
      chains: [...o.chains].sort(byName),
      sets: [...o.sets].sort(byName).map(([n, x]) => [n, { type: x.type, elems: [...x.elems].sort() }]),
    });
    const all = [...PORTS, ...br7, lan];
    const cases: Array<[string, BridgePort[], BridgePort[]]> = [
      ['a network of three stops', all, [...PORTS, lan]],
      ['the bridged network stops', all, [...PORTS, ...br7]],
      ['the last network stops', PORTS, []],
    ];
    for (const [name, before, after] of cases) {
      nft(['-f', '-'], renderBridgeTable(before, []));
      assert.deepEqual(sorted(expectedBridgeTable(before)), sorted(parseBridgeTable(listed())), name);
      const diff = bridgeDiff(after, expectedBridgeTable(before));
      assert.deepEqual(diff, bridgeDiff(after, parseBridgeTable(listed())), `${name}: the same diff`);
      nft(['-f', '-'], renderBridgeUpdate(after, diff, []));
      if (after.length) assert.deepEqual(bridgeDrift(after, parseBridgeTable(listed())), [], name);
      else
        assert.equal(
          spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'bridge', 'kvmnet']).status,
          1,
        );
      spawnSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'bridge', 'kvmnet']);
    }
    assert.deepEqual(expectedBridgeTable([]), { table: false, chains: new Map(), sets: new Map() });
  });
  test('the table grows linearly with the ports, and little', () => {
    const size = (n: number): number => renderBridgeTable(reserved(n), []).length;
    assert.ok(size(200) < 200 * 200, `${size(200)} bytes for 200 ports`);
    assert.ok(size(400) < 2.2 * size(200), `${size(400)} bytes for 400 ports, ${size(200)} for 200`);
  });
  test('no checked port: the transaction only removes the table; odd names are never rendered', () => {
    assert.equal(renderBridgeTable([], []), 'table bridge kvmnet\ndelete table bridge kvmnet\n');
    const odd = renderBridgeTable(
      [{ tap: 'a"; flush ruleset', mac: '52:54:00:00:00:09', bridge: 'br9' }],
      [],
    );
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
  const hns = `ut-${process.pid}-hook`;
  const dir = mkdtempSync(join(tmpdir(), 'kvmnet-hook-'));
  const hook = join(dir, 'lease-hook');
  const sh = (args: string[], env: NodeJS.ProcessEnv = {}): string => {
    const r = spawnSync('ip', ['netns', 'exec', hns, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const set = (name: string): string => sh(['nft', 'list', 'set', 'bridge', 'kvmnet', name]);

  before(() => {
    assert.equal(spawnSync('ip', ['netns', 'add', hns]).status, 0);
    writeFileSync(hook, renderLeaseHook(), { mode: 0o755 });
    const r = spawnSync('ip', ['netns', 'exec', hns, 'nft', '-f', '-'], {
      input: renderBridgeTable(PORTS, []),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    spawnSync('ip', ['netns', 'del', hns]);
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

  test('arguments that are not a MAC and an address change nothing and never fail dnsmasq', () => {
    sh([hook, 'add', '52:54:00:00:00:02;reboot', '10.9.0.5']);
    sh([hook, 'add', '52:54:00:00:00:02', '10.9.0.5 }; flush ruleset; #']);
    sh([hook, 'tftp', '1234', '10.9.0.5', '/file']);
    assert.doesNotMatch(set('lease_ip'), /52:54/);
  });
});
