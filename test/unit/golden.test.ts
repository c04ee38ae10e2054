// Golden files: for each test/golden/<case>/network.yaml (one network), the rendered dnsmasq.conf
// and nft.txt must equal the files beside it byte for byte. A case with ports.json (sample ports
// of the network, and optionally a dnsmasq lease file `leases`) also renders nft-bridge.txt, the
// anti-spoofing table bridge kvmnet (a bridged network's case renders only that). `UPDATE_GOLDEN=1` rewrites them
// instead (then review the diff with git). The golden texts are also fed to the real tools:
// `nft -c -f` in a throwaway network namespace, `dnsmasq --test`.
import { lineDiff } from '../lib/diff.js';
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { driverFor } from '../../src/drivers/registry.js';
import { parseDefinitions } from '../../src/model/definitions.js';
import { buildNetwork, checkPeers, isL3, peerBridgesOf, type NetworkDef } from '../../src/model/network.js';
import { renderDnsmasqConf, renderNetworkDhcpHosts, renderNetworkHosts } from '../../src/render/dnsmasq.js';
import { buildFragment, renderFragment, renderSkeleton } from '../../src/render/nft.js';
import { renderBridgeTable } from '../../src/render/nft-bridge.js';
import { bridgePorts } from '../../src/engine/spoof.js';
import { parseLeases } from '../../src/engine/leases.js';
import type { StateData } from '../../src/engine/store.js';
import type { PortDef } from '../../src/model/port.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const GOLDEN = join(REPO, 'test/golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const REQUIRED = ['nat-default', 'nat-domain-range', 'nat-no-dhcp', 'isolated', 'routed', 'nat-slash16'];

// test/golden/persist/ holds the bridged-network persistence cases (test/unit/persist.test.ts).
const CASES = readdirSync(GOLDEN, { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== 'persist')
  .map((d) => d.name)
  .sort();

/** The case's network is the file's first; any others are only its context (e.g. its routed peers). */
function loadCase(name: string): { def: NetworkDef; peers: string[] } {
  const file = join(GOLDEN, name, 'network.yaml');
  const inputs = parseDefinitions(readFileSync(file, 'utf8'), relative(REPO, file));
  assert.ok(inputs.length >= 1, `${relative(REPO, file)} must define a network`);
  const defs: NetworkDef[] = [];
  for (const input of inputs)
    defs.push(buildNetwork({ ...input, bridge: input.bridge ?? 'virbr9' }, { others: defs }));
  checkPeers(defs);
  const def = defs[0];
  assert.ok(def);
  return { def, peers: peerBridgesOf(def, defs) };
}

/** nft-bridge.txt of a case with ports.json: the ports (tap, vm, mac, ip, spoofCheck) on the network. */
function renderBridgeCase(name: string, def: NetworkDef): Record<string, string> {
  const file = join(GOLDEN, name, 'ports.json');
  if (!existsSync(file)) return {};
  const list = JSON.parse(readFileSync(file, 'utf8')) as Array<
    Omit<PortDef, 'network' | 'index' | 'model' | 'link'>
  >;
  const ports: Record<string, PortDef> = {};
  list.forEach((p, i) => {
    ports[p.name] = { ...p, network: def.name, index: i, model: 'virtio-net-pci', link: 'up' };
  });
  const state: StateData = {
    version: 1,
    initialized: true,
    networks: { [def.name]: def },
    ports,
    forwards: {},
  };
  const leaseFile = join(GOLDEN, name, 'leases');
  const leases = existsSync(leaseFile) ? parseLeases(readFileSync(leaseFile, 'utf8')) : [];
  return {
    'nft-bridge.txt': renderBridgeTable(
      bridgePorts(state, new Set([def.name])),
      leases.map((l) => ({ mac: l.mac, ip: l.ip })),
    ),
  };
}

/** dnsmasq.conf and nft.txt; dhcp-hosts and hosts too when the network has static hosts or DNS records. */
function renderCase(
  name: string,
  { def, peers }: { def: NetworkDef; peers: string[] },
): Record<string, string> {
  const bridge = renderBridgeCase(name, def);
  if (!isL3(def)) return bridge;
  const n = def.name;
  const dhcpHosts = renderNetworkDhcpHosts(def);
  const hosts = renderNetworkHosts(def);
  return {
    ...(dhcpHosts ? { 'dhcp-hosts': dhcpHosts } : {}),
    ...(hosts ? { hosts } : {}),
    'dnsmasq.conf': renderDnsmasqConf(def, {
      pidFile: `/run/kvmnet/net/${n}/dnsmasq.pid`,
      leaseFile: `/var/lib/kvmnet/leases/${n}.leases`,
      dhcpHostsFile: `/run/kvmnet/net/${n}/dhcp-hosts`,
      hostsFile: `/run/kvmnet/net/${n}/hosts`,
      ...('nft-bridge.txt' in bridge && def.dhcp ? { leaseHook: `/run/kvmnet/net/${n}/lease-hook` } : {}),
    }),
    'nft.txt': renderSkeleton() + renderFragment(buildFragment(driverFor(def.mode).firewall(def, [], peers))),
    ...bridge,
  };
}

describe('golden files', () => {
  test('the required cases exist', () => {
    for (const c of REQUIRED) assert.ok(CASES.includes(c), `test/golden/${c}/ is missing`);
  });

  for (const name of CASES) {
    test(name, () => {
      const rendered = renderCase(name, loadCase(name));
      const stale: string[] = [];
      for (const [file, text] of Object.entries(rendered)) {
        const path = join(GOLDEN, name, file);
        if (UPDATE) {
          writeFileSync(path, text);
          continue;
        }
        if (!existsSync(path)) {
          stale.push(`test/golden/${name}/${file} does not exist`);
          continue;
        }
        const want = readFileSync(path, 'utf8');
        if (want !== text) {
          stale.push(
            `test/golden/${name}/${file} differs (- golden only, + rendered only; line numbers: golden, rendered):\n${lineDiff(want, text)}`,
          );
        }
      }
      if (stale.length > 0) {
        assert.fail(
          `${stale.join('\n\n')}\n\nIf the change is intended: UPDATE_GOLDEN=1 node --test dist/test/unit/golden.test.js, then review git diff test/golden`,
        );
      }
    });
  }
});

describe('lineDiff', () => {
  test('marks removed and added lines with their line numbers, two lines of context around them', () => {
    const want = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].join('\n');
    const got = ['a', 'b', 'c', 'd', 'E', 'f', 'g', 'h', 'i'].join('\n');
    assert.equal(
      lineDiff(want, got),
      [
        '  ...',
        '    3   3 | c',
        '    4   4 | d',
        '-   5     | e',
        '+       5 | E',
        '    6   6 | f',
        '    7   7 | g',
        '    8   8 | h',
        '+       9 | i',
      ].join('\n'),
    );
  });

  test('shows invisible differences (trailing blanks, tabs) escaped', () => {
    assert.equal(
      lineDiff('x \ny\tz', 'x\ny z'),
      ['-   1     | x·', '-   2     | y\\tz', '+       1 | x', '+       2 | y z'].join('\n'),
    );
  });

  test('equal texts: no output', () => {
    assert.equal(lineDiff('a\nb\n', 'a\nb\n'), '');
  });
});

describe('golden files are accepted by the real tools', () => {
  const ns = `ut-${process.pid}-golden`;
  const run = (cmd: string, args: string[]): { code: number | null; out: string } => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };

  // Flow offload: where the kernel has no flowtables (nf_flow_table), `nft -c` refuses the
  // flowtable and its `flow add` rule with ENOENT only (the syntax is fine), and the rest is checked
  // without them, as kvmnet applies it there.
  let flowtables = true;
  before(() => {
    const r = run('ip', ['netns', 'add', ns]);
    assert.equal(r.code, 0, `ip netns add ${ns}: ${r.out}`);
    flowtables =
      spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], {
        input: 'table inet probe {\n  flowtable f { hook ingress priority 0; devices = { "lo" }; }\n}\n',
      }).status === 0;
  });
  const checkNft = (file: string): void => {
    const text = readFileSync(file, 'utf8');
    const hasFt = text.includes('add flowtable ');
    const check = (input: string): { code: number | null; out: string } => {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], { encoding: 'utf8', input });
      return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
    };
    if (flowtables || !hasFt) {
      const r = check(text);
      assert.equal(r.code, 0, `nft -c -f ${relative(REPO, file)}: ${r.out}`);
      assert.equal(r.out, '');
      return;
    }
    const full = check(text);
    const errors = full.out.split('\n').filter((l) => /Error:/.test(l));
    assert.ok(errors.length > 0, `nft -c -f ${relative(REPO, file)} passed on a kernel without flowtables`);
    for (const e of errors) assert.match(e, /Could not process rule: No such file or directory/);
    const stripped = text
      .split('\n')
      .filter((l) => !l.startsWith('add flowtable ') && !l.includes(' flow add @'))
      .join('\n');
    const r = check(stripped);
    assert.equal(r.code, 0, `nft -c -f ${relative(REPO, file)} without its flowtable: ${r.out}`);
  };
  after(() => {
    const r = run('ip', ['netns', 'del', ns]);
    assert.equal(r.code, 0, `ip netns del ${ns}: ${r.out}`);
  });

  for (const name of CASES.filter((c) => existsSync(join(GOLDEN, c, 'nft-bridge.txt')))) {
    test(`${name}: nft -c -f nft-bridge.txt`, () => {
      const file = join(GOLDEN, name, 'nft-bridge.txt');
      const r = run('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', file]);
      assert.equal(r.code, 0, `nft -c -f ${relative(REPO, file)}: ${r.out}`);
      assert.equal(r.out, '');
    });
  }

  for (const name of CASES.filter((c) => existsSync(join(GOLDEN, c, 'nft.txt')))) {
    test(`${name}: nft -c -f nft.txt`, () => {
      checkNft(join(GOLDEN, name, 'nft.txt'));
    });

    test(`${name}: dnsmasq --test`, () => {
      const file = join(GOLDEN, name, 'dnsmasq.conf');
      const r = run('dnsmasq', ['--test', `--conf-file=${file}`]);
      assert.equal(r.code, 0, `dnsmasq --test --conf-file=${relative(REPO, file)}: ${r.out}`);
      assert.equal(r.out, 'dnsmasq: syntax check OK.');
    });
  }

  test('nft -c really checks: a broken copy is refused', () => {
    const file = join(GOLDEN, 'nat-default', 'nft.txt');
    const broken = readFileSync(file, 'utf8').replace(
      'masquerade to :1024-65535',
      'masquerade too :1024-65535',
    );
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], {
      encoding: 'utf8',
      input: broken,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /syntax error/);
  });

  test('dnsmasq --test really checks: an unknown option is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmnet-golden-'));
    try {
      const conf = join(dir, 'dnsmasq.conf');
      const golden = readFileSync(join(GOLDEN, 'nat-default', 'dnsmasq.conf'), 'utf8');
      writeFileSync(conf, golden + 'dhcp-rnage=1.2.3.4\n');
      const badLine = golden.split('\n').length; // the appended line
      const r = run('dnsmasq', ['--test', `--conf-file=${conf}`]);
      assert.notEqual(r.code, 0);
      assert.match(r.out, new RegExp(`bad option at line ${badLine} of `));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
