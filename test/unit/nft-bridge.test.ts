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
  bridgeDrift,
  bridgeRuleCount,
  bridgeTag,
  parseBridgeTable,
  renderBridgeTable,
  renderLeaseHook,
  type BridgePort,
} from '../../src/render/nft-bridge.js';

const PORTS: BridgePort[] = [
  { tap: 'vnet0', mac: '52:54:00:00:00:01', ip: '10.9.0.50', l3: { gateway: '10.9.0.1', protected: [] } },
  { tap: 'vnet1', mac: '52:54:00:00:00:02', l3: { gateway: '10.9.0.1', protected: ['10.9.0.50'] } },
];

function listing(ports: BridgePort[], comment: string, drop = 0): unknown {
  const rules = Array.from({ length: bridgeRuleCount(ports) - drop }, () => ({ rule: { comment } }));
  return {
    nftables: [
      { table: { family: 'bridge', name: 'kvmnet' } },
      { map: { name: 'ports', elem: ports.map((p) => [p.tap, { jump: { target: `port_${p.tap}` } }]) } },
      ...rules,
    ],
  };
}

describe('table bridge kvmnet drift', () => {
  const tag = `kvmnet#${bridgeTag(PORTS)}`;
  test('a table as rendered has no drift', () => {
    assert.deepEqual(bridgeDrift(PORTS, parseBridgeTable(listing(PORTS, tag))), []);
  });
  test('a missing table, a missing rule, a changed rule, a missing port, a table nobody needs', () => {
    assert.match(bridgeDrift(PORTS, parseBridgeTable(null)).join(), /table bridge kvmnet is missing/);
    assert.match(bridgeDrift(PORTS, parseBridgeTable(listing(PORTS, tag, 1))).join(), /rules not matching/);
    assert.match(
      bridgeDrift(PORTS, parseBridgeTable(listing(PORTS, 'kvmnet#0'))).join(),
      /rules not matching/,
    );
    const one = PORTS.slice(0, 1);
    assert.match(
      bridgeDrift(PORTS, parseBridgeTable(listing(one, tag))).join(),
      /checks ports vnet0, expected/,
    );
    assert.match(bridgeDrift([], parseBridgeTable(listing(PORTS, tag))).join(), /no longer needed/);
    assert.deepEqual(bridgeDrift([], parseBridgeTable(null)), []);
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

  test('arguments that are not a MAC and an address change nothing and never fail dnsmasq', () => {
    sh([hook, 'add', '52:54:00:00:00:02;reboot', '10.9.0.5']);
    sh([hook, 'add', '52:54:00:00:00:02', '10.9.0.5 }; flush ruleset; #']);
    sh([hook, 'tftp', '1234', '10.9.0.5', '/file']);
    assert.doesNotMatch(set('lease_ip'), /52:54/);
  });
});
