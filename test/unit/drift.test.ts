// Drift comparison (src/engine/drift.ts) on hand-made observations: what kvmnet expects is what
// the renderer and the planners produce, so a clean observation built from them has no findings
// and each single change is named with the right kind.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, type NetworkDef } from '../../src/model/network.js';
import { driverFor } from '../../src/drivers/registry.js';
import type { FirewallObserved } from '../../src/firewall/backend.js';
import type { LinkInfo } from '../../src/host/host.js';
import {
  compareNetwork,
  comparePorts,
  compareNft,
  desiredNft,
  type Finding,
} from '../../src/engine/drift.js';
import { Paths } from '../../src/engine/paths.js';
import { dnsmasqFiles, type Observed } from '../../src/engine/plan.js';
import type { AppliedNetwork } from '../../src/engine/store.js';
import { elementData, withoutOffload } from '../../src/render/nft.js';
import { tapMac, type PortDef } from '../../src/model/port.js';

const NET: NetworkDef = buildNetwork(
  { name: 'default', mode: 'nat', subnet: '192.168.122.0/24', bridge: 'virbr0' },
  { others: [] },
);
const PATHS = new Paths('/state', '/run/kvmnet');
const PORT: PortDef = {
  name: 'vnet0',
  network: 'default',
  vm: 'web',
  index: 0,
  mac: '52:54:00:00:00:10',
  ip: '192.168.122.10',
  model: 'virtio-net-pci',
  link: 'up',
};
const DNAT = [{ proto: 'tcp' as const, port: 8080, targetIp: '192.168.122.10', targetPort: 80 }];
const intent = driverFor('nat').firewall(NET, DNAT);

/** The nft table exactly as kvmnet wants it. */
function cleanFw(applied = intent): FirewallObserved {
  const chains = new Map<string, Array<string | undefined>>();
  const elements = new Map<string, string | undefined>();
  for (const t of desiredNft(applied)) {
    for (const c of t.chains)
      chains.set(
        c.name,
        Array.from({ length: c.rules }, () => c.comment),
      );
    for (const e of t.elements) elements.set(`${e.map}|${e.key}`, elementData(e));
  }
  return { table: true, skeletonOk: true, badBaseChains: [], retiredChains: [], chains, elements };
}

function link(ifname: string, extra: Partial<LinkInfo>): LinkInfo {
  return { ifname, ifindex: 1, address: '', flags: ['UP'], operstate: 'UP', mtu: 1500, ...extra };
}

function clean(): { obs: Observed; applied: AppliedNetwork } {
  const files = new Map<string, string | null>(dnsmasqFiles(NET, PATHS, [PORT]));
  const applied: AppliedNetwork = {
    version: 1,
    network: 'default',
    state: 'active',
    def: NET,
    bridge: 'virbr0',
    firewall: { chains: [], elements: [] },
    dnsmasq: { confFile: PATHS.dnsmasqConf('default'), pidFile: PATHS.dnsmasqPid('default'), pid: 42 },
    runDir: PATHS.netRunDir('default'),
    updatedAt: '',
  };
  const obs: Observed = {
    links: new Map([
      ['virbr0', link('virbr0', { kind: 'bridge', address: NET.mac, stpState: 0, forwardDelay: 0 })],
      ['vnet0', link('vnet0', { kind: 'tun', address: tapMac(PORT.mac), master: 'virbr0' })],
    ]),
    addrs: [{ ifname: 'virbr0', cidr: '192.168.122.1/24', dynamic: false }],
    routes: [],
    fw: cleanFw(),
    bridgeTable: null,
    sysctls: new Map([['net.ipv4.ip_forward', '1']]),
    files,
    procs: new Map([[42, ['dnsmasq', `--conf-file=${PATHS.dnsmasqConf('default')}`]]]),
  };
  return { obs, applied };
}

function compare(obs: Observed, applied: AppliedNetwork): Finding[] {
  return compareNetwork({
    def: NET,
    applied,
    obs,
    ports: [PORT],
    intent,
    sysctls: driverFor('nat').sysctls(NET),
    paths: PATHS,
  });
}

const kinds = (f: Finding[]): string[] => f.map((x) => x.kind);

describe('drift comparison', () => {
  test('a host exactly as planned has no findings', () => {
    const { obs, applied } = clean();
    assert.deepEqual(compare(obs, applied), []);
  });

  test('flow offload skipped on a kernel without flowtables is not drift; missing where the kernel has them, it is', () => {
    const { obs, applied } = clean();
    // The table as applied on a kernel without flowtables: no flowtable, no flow add rule.
    obs.fw = { ...cleanFw(withoutOffload(intent, false)), flowtableSupport: false };
    assert.ok(intent.offload, 'the nat intent asks for offload');
    assert.deepEqual(compare(obs, applied), []);
    obs.fw.flowtableSupport = true;
    const found = compare(obs, applied);
    assert.ok(
      found.some((f) => f.kind === 'nft-chain' && f.object === 'chain inet kvmnet net_default_out'),
      JSON.stringify(found),
    );
  });

  test('each single difference is named with its kind', () => {
    const cases: Array<[string, (o: Observed) => void, string[]]> = [
      ['bridge gone', (o) => o.links.delete('virbr0'), ['bridge-missing']],
      ['bridge down', (o) => (o.links.get('virbr0')!.flags = []), ['bridge-down']],
      ['address gone', (o) => (o.addrs = []), ['bridge-address']],
      ['ip_forward off', (o) => o.sysctls.set('net.ipv4.ip_forward', '0'), ['sysctl']],
      [
        'table gone',
        (o) => (o.fw = { ...o.fw, table: false, chains: new Map(), elements: new Map() }),
        ['nft-table'],
      ],
      ['chain flushed', (o) => o.fw.chains.set('net_default_in', []), ['nft-chain']],
      ['forward element gone', (o) => o.fw.elements.delete('fwd_any|tcp . 8080'), ['forward-missing']],
      ['dnsmasq gone', (o) => o.procs.set(42, null), ['dnsmasq-down']],
      ['conf edited', (o) => o.files.set(PATHS.dnsmasqConf('default'), 'x'), ['dnsmasq-config']],
      ['tap unplugged', (o) => delete o.links.get('vnet0')!.master, ['tap-unplugged']],
      ['tap down', (o) => (o.links.get('vnet0')!.flags = []), ['tap-down']],
      ['tap gone', (o) => o.links.delete('vnet0'), ['tap-missing']],
    ];
    for (const [name, change, want] of cases) {
      const { obs, applied } = clean();
      change(obs);
      assert.deepEqual(kinds(compare(obs, applied)), want, name);
    }
  });

  test('a missing bridge does not also report its taps as unplugged (re-making it re-plugs them)', () => {
    const { obs } = clean();
    delete obs.links.get('vnet0')!.master;
    assert.deepEqual(comparePorts('default', [PORT], null, obs.links), []);
  });

  test('an element holding another target is reported with both values', () => {
    const fw = cleanFw();
    fw.elements.set('fwd_any|tcp . 8080', '192.168.122.99 . 80');
    const f = compareNft('default', desiredNft(intent), fw);
    assert.equal(f.length, 1);
    assert.equal(f[0]?.kind, 'forward-missing');
    assert.equal(f[0]?.actual, '192.168.122.99 . 80');
    assert.equal(f[0]?.expected, '192.168.122.10 . 80');
  });

  test('an open network wants no table at all', () => {
    const open = buildNetwork(
      { name: 'o', mode: 'open', subnet: '10.9.0.0/24', bridge: 'virbr9' },
      { others: [] },
    );
    assert.deepEqual(desiredNft(driverFor('open').firewall(open, [])), []);
  });
});
