// The persistence renderer (src/render/persist.ts): golden files for every case and format under
// test/golden/persist/<case>/<format>/<absolute path> (`UPDATE_GOLDEN=1` rewrites them; review the
// diff with git), edge cases, and the golden files fed to the real tools in temporary directories
// and throwaway namespaces, never the host's /etc:
// - netplan: `netplan generate --root-dir` (Debian package netplan.io);
// - ifupdown: `ifquery` and `ifup --no-act` on an interfaces file that sources ours (ifupdown);
// - NetworkManager: libnm's keyfile reader and strict verify(), the code NetworkManager and
//   `nmcli --offline` load profiles with, through python3-gi (gir1.2-nm-1.0); the daemon package is
//   not needed;
// - systemd-networkd: no offline checker exists (`systemd-analyze verify` takes units only), so the
//   real daemon applies the files inside private network/mount/PID namespaces against a veth "LAN"
//   with a dnsmasq DHCP server, and the resulting links, addresses, routes and DHCP lease are read back;
// - ifcfg: nothing in Debian reads it (its NetworkManager plugin ifcfg-rh is not built there, and
//   initscripts is not packaged); only what initscripts does with the files is replayed: the ifcfg
//   files are sourced by bash, the route file's lines go to `ip -4 route add` in a network namespace.
// Each tool check skips with a message when its tool is missing, and has a negative control that
// proves the tool refuses a broken file.
import { lineDiff } from '../lib/diff.js';
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { KvmnetError } from '../../src/model/errors.js';
import {
  PERSIST_FORMATS,
  renderPersist,
  stableUuid,
  type PersistFile,
  type PersistFormat,
  type PersistInput,
} from '../../src/render/persist.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const GOLDEN = join(REPO, 'test/golden/persist');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const MAC = '52:54:00:aa:bb:cc';

const CASES: Record<string, PersistInput> = {
  // The seed's example: eth1 had 192.168.100.239/24 and the default route via the LAN's router.
  static: {
    bridge: 'virbr1',
    uplink: 'eth1',
    mac: MAC,
    dhcp: false,
    addresses: ['192.168.100.239/24'],
    routes: [{ dst: 'default', via: '192.168.100.254', metric: 100 }],
  },
  dhcp: { bridge: 'virbr1', uplink: 'eth1', mac: MAC, dhcp: true, addresses: [], routes: [] },
  'static-routes-mtu': {
    bridge: 'virbr1',
    uplink: 'eth1',
    mac: MAC,
    mtu: 9000,
    dhcp: false,
    addresses: ['192.168.100.239/24', '192.168.100.240/24'],
    routes: [
      { dst: 'default', via: '192.168.100.254', metric: 100 },
      { dst: '10.50.0.0/16', via: '192.168.100.1', metric: 50 },
    ],
  },
};
const CASE_NAMES = Object.keys(CASES);

function input(name: string): PersistInput {
  const c = CASES[name];
  assert.ok(c, `no case ${name}`);
  return c;
}

function goldenDir(name: string, format: PersistFormat): string {
  return join(GOLDEN, name, format);
}

/** The files under dir, as absolute target paths ("/etc/..."). */
function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`/${relative(dir, p)}`);
    }
  };
  walk(dir);
  return out.sort();
}

/** Writes files under root at their target paths, with their modes. */
function materialize(root: string, files: PersistFile[]): void {
  for (const f of files) {
    const p = join(root, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.content);
    chmodSync(p, f.mode);
  }
}

/** The golden files of a case and format (what the tools are run on). */
function goldenFiles(name: string, format: PersistFormat): PersistFile[] {
  const dir = goldenDir(name, format);
  const modes = new Map(renderPersist(format, input(name)).map((f) => [f.path, f.mode]));
  return listTree(dir).map((path) => ({
    path,
    content: readFileSync(join(dir, path), 'utf8'),
    mode: modes.get(path) ?? 0o644,
  }));
}

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'kvmnet-persist-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): { code: number | null; stdout: string; stderr: string; out: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 30_000,
    killSignal: 'SIGKILL',
  });
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  return { code: r.status, stdout, stderr, out: `${stdout}${stderr}`.trim() };
}

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(d, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

describe('persist golden files', () => {
  for (const name of CASE_NAMES) {
    for (const format of PERSIST_FORMATS) {
      test(`${name}/${format}`, () => {
        const dir = goldenDir(name, format);
        const rendered = renderPersist(format, input(name));
        if (UPDATE) {
          rmSync(dir, { recursive: true, force: true });
          for (const f of rendered) {
            const p = join(dir, f.path);
            mkdirSync(dirname(p), { recursive: true });
            writeFileSync(p, f.content);
          }
          return;
        }
        const shown = (path: string): string => relative(REPO, join(dir, path));
        const stale: string[] = [];
        const want = listTree(dir);
        for (const f of rendered) {
          if (!want.includes(f.path)) {
            stale.push(`${shown(f.path)} does not exist`);
            continue;
          }
          const golden = readFileSync(join(dir, f.path), 'utf8');
          if (golden !== f.content) {
            stale.push(
              `${shown(f.path)} differs (- golden only, + rendered only; line numbers: golden, rendered):\n${lineDiff(golden, f.content)}`,
            );
          }
        }
        for (const path of want) {
          if (!rendered.some((f) => f.path === path)) stale.push(`${shown(path)} is no longer rendered`);
        }
        if (stale.length > 0) {
          assert.fail(
            `${stale.join('\n\n')}\n\nIf the change is intended: UPDATE_GOLDEN=1 node --test dist/test/unit/persist.test.js, then review git diff test/golden/persist`,
          );
        }
      });
    }
  }
});

describe('renderPersist', () => {
  const all = (i: PersistInput): PersistFile[] => PERSIST_FORMATS.flatMap((f) => renderPersist(f, i));
  const content = (format: PersistFormat, i: PersistInput, suffix: string): string => {
    const f = renderPersist(format, i).find((x) => x.path.endsWith(suffix));
    assert.ok(f, `no ${format} file ending in ${suffix}`);
    return f.content;
  };

  test('the files and their modes: NetworkManager and netplan 0600 (they may hold secrets), others 0644', () => {
    const got = Object.fromEntries(
      PERSIST_FORMATS.map((f) => [
        f,
        renderPersist(f, input('static-routes-mtu')).map((x) => [x.path, x.mode]),
      ]),
    );
    assert.deepEqual(got, {
      ifcfg: [
        ['/etc/sysconfig/network-scripts/ifcfg-virbr1', 0o644],
        ['/etc/sysconfig/network-scripts/ifcfg-eth1', 0o644],
        ['/etc/sysconfig/network-scripts/route-virbr1', 0o644],
      ],
      networkd: [
        ['/etc/systemd/network/10-kvmnet-virbr1.netdev', 0o644],
        ['/etc/systemd/network/10-kvmnet-virbr1.network', 0o644],
        ['/etc/systemd/network/10-kvmnet-eth1.network', 0o644],
      ],
      nm: [
        ['/etc/NetworkManager/system-connections/kvmnet-virbr1.nmconnection', 0o600],
        ['/etc/NetworkManager/system-connections/kvmnet-eth1.nmconnection', 0o600],
      ],
      ifupdown: [['/etc/network/interfaces.d/kvmnet-virbr1', 0o644]],
      netplan: [['/etc/netplan/60-kvmnet-virbr1.yaml', 0o600]],
    });
  });

  test('every file starts with the kvmnet comment and ends with a newline', () => {
    for (const name of CASE_NAMES) {
      for (const f of all(input(name))) {
        assert.match(f.content, /^# Generated by kvmnet: bridge virbr1 with uplink eth1 /, f.path);
        assert.ok(f.content.endsWith('\n'), f.path);
      }
    }
  });

  test('dhcp: no addresses, no gateway, no static routes in any format', () => {
    const i = input('dhcp');
    const ifcfg = content('ifcfg', i, 'ifcfg-virbr1');
    assert.match(ifcfg, /^BOOTPROTO=dhcp$/m);
    assert.doesNotMatch(ifcfg, /^(IPADDR|PREFIX|NETMASK|GATEWAY|METRIC)/m);
    assert.ok(!renderPersist('ifcfg', i).some((f) => f.path.includes('route-')));
    const nd = content('networkd', i, 'virbr1.network');
    assert.match(nd, /^DHCP=ipv4$/m);
    assert.match(nd, /^ClientIdentifier=mac$/m);
    assert.doesNotMatch(nd, /^(Address|Gateway)=|\[Route\]/m);
    const nm = content('nm', i, 'kvmnet-virbr1.nmconnection');
    assert.match(nm, /^method=auto$/m);
    assert.doesNotMatch(nm, /^(address\d*|gateway|route\d+)=/m);
    const ifup = content('ifupdown', i, 'kvmnet-virbr1');
    assert.match(ifup, /^iface virbr1 inet dhcp$/m);
    assert.doesNotMatch(ifup, /^\s*(address|gateway|metric|up ip route)\b/m);
    const np = parseYaml(content('netplan', i, '.yaml')) as {
      network: { bridges: { virbr1: Record<string, unknown> } };
    };
    const br = np.network.bridges.virbr1;
    assert.equal(br['dhcp4'], true);
    assert.equal(br['dhcp-identifier'], 'mac');
    assert.equal(br['addresses'], undefined);
    assert.equal(br['routes'], undefined);
  });

  test('one address is IPADDR/PREFIX, several are IPADDR0/PREFIX0, ...', () => {
    assert.match(
      content('ifcfg', input('static'), 'ifcfg-virbr1'),
      /^IPADDR=192\.168\.100\.239\nPREFIX=24$/m,
    );
    assert.match(
      content('ifcfg', input('static-routes-mtu'), 'ifcfg-virbr1'),
      /^IPADDR0=192\.168\.100\.239\nPREFIX0=24\nIPADDR1=192\.168\.100\.240\nPREFIX1=24$/m,
    );
  });

  test('the uplink carries no IP configuration and the MTU is on both links', () => {
    const i = input('static-routes-mtu');
    const eth = content('ifcfg', i, 'ifcfg-eth1');
    assert.doesNotMatch(eth, /IPADDR|BOOTPROTO=dhcp|GATEWAY/);
    assert.match(eth, /^BRIDGE=virbr1$/m);
    assert.match(eth, /^MTU=9000$/m);
    assert.match(content('ifcfg', i, 'ifcfg-virbr1'), /^MTU=9000$/m);
    assert.match(content('networkd', i, 'eth1.network'), /^MTUBytes=9000$/m);
    assert.match(content('networkd', i, '.netdev'), /^MTUBytes=9000$/m);
    // Without an MTU none is written.
    for (const f of all(input('static'))) assert.doesNotMatch(f.content, /mtu/i, f.path);
  });

  test('NetworkManager UUIDs are stable, version 4 format, and differ per bridge and per profile', () => {
    const uuidOf = (i: PersistInput, file: string): string => {
      const m = /^uuid=(.*)$/m.exec(content('nm', i, file));
      assert.ok(m?.[1]);
      return m[1];
    };
    const a = uuidOf(input('static'), 'kvmnet-virbr1.nmconnection');
    assert.equal(a, uuidOf(input('dhcp'), 'kvmnet-virbr1.nmconnection'));
    assert.equal(a, stableUuid('kvmnet/nm/virbr1'));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const port = uuidOf(input('static'), 'kvmnet-eth1.nmconnection');
    assert.match(port, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(port, a);
    const other = uuidOf({ ...input('static'), bridge: 'virbr2' }, 'kvmnet-virbr2.nmconnection');
    assert.notEqual(other, a);
  });

  test('rendering is deterministic', () => {
    for (const name of CASE_NAMES) assert.deepEqual(all(input(name)), all(structuredClone(input(name))));
  });

  test('netplan quotes the MAC, so a YAML 1.1 reader cannot take an all-digit one for a number', () => {
    const i = { ...input('static'), mac: '52:54:00:12:34:56' };
    const text = content('netplan', i, '.yaml');
    assert.match(text, /^ {6}macaddress: "52:54:00:12:34:56"$/m);
    const doc = parseYaml(text, { version: '1.1' }) as {
      network: { bridges: { virbr1: { macaddress: unknown } } };
    };
    assert.equal(doc.network.bridges.virbr1.macaddress, '52:54:00:12:34:56');
  });

  test('a route without a gateway is a link route', () => {
    const i: PersistInput = { ...input('static'), routes: [{ dst: '10.9.0.0/16' }] };
    assert.match(content('ifcfg', i, 'route-virbr1'), /^10\.9\.0\.0\/16 dev virbr1$/m);
    assert.match(content('networkd', i, 'virbr1.network'), /\[Route\]\nDestination=10\.9\.0\.0\/16\n/);
    assert.match(content('nm', i, 'kvmnet-virbr1.nmconnection'), /^route1=10\.9\.0\.0\/16$/m);
    assert.match(
      content('ifupdown', i, 'kvmnet-virbr1'),
      /^ {4}up ip route add 10\.9\.0\.0\/16 dev virbr1$/m,
    );
    assert.match(content('netplan', i, '.yaml'), /- to: 10\.9\.0\.0\/16\n\s+scope: link\n/);
  });

  test('inconsistent or unsafe input is refused with an input error', () => {
    const base = input('static');
    const bad: Array<[string, PersistInput, RegExp]> = [
      [
        'dhcp with addresses',
        { ...base, dhcp: true, routes: [] },
        /DHCP bridge cannot also carry static addresses/,
      ],
      [
        'dhcp with a default route',
        { ...base, dhcp: true, addresses: [] },
        /default route from the DHCP server/,
      ],
      [
        'two default routes',
        { ...base, routes: [...base.routes, { dst: 'default', via: '192.168.100.253' }] },
        /more than one default route/,
      ],
      ['default without a gateway', { ...base, routes: [{ dst: 'default' }] }, /without a gateway/],
      ['routes without an address', { ...base, addresses: [] }, /need an address/],
      ['a newline in a name', { ...base, bridge: 'virbr1\nBOOTPROTO=dhcp' }, /is not an interface name/],
      ['a name over 15 bytes', { ...base, uplink: 'enp0s31f6abcdefg' }, /is not an interface name/],
      ['the bridge as its own port', { ...base, uplink: 'virbr1' }, /both "virbr1"/],
      ['an upper-case MAC', { ...base, mac: '52:54:00:AA:BB:CC' }, /is not a lower-case/],
      ['a bad address', { ...base, addresses: ['192.168.100.300/24'] }, /is not an IPv4 CIDR/],
      ['a bad gateway', { ...base, routes: [{ dst: 'default', via: 'router' }] }, /is not an IPv4 address/],
      [
        'a bad metric',
        { ...base, routes: [{ dst: 'default', via: '192.168.100.254', metric: -1 }] },
        /metric -1/,
      ],
      ['a bad MTU', { ...base, mtu: 0 }, /MTU 0/],
    ];
    for (const [what, i, re] of bad) {
      for (const format of PERSIST_FORMATS) {
        assert.throws(
          () => renderPersist(format, i),
          (e: unknown) => e instanceof KvmnetError && e.kind === 'input' && re.test(e.message),
          `${what} (${format})`,
        );
      }
    }
  });

  test('a bridge without any IP configuration (pure layer 2) is allowed', () => {
    const i: PersistInput = { ...input('static'), addresses: [], routes: [] };
    assert.match(content('ifupdown', i, 'kvmnet-virbr1'), /^iface virbr1 inet manual$/m);
    assert.match(content('ifcfg', i, 'ifcfg-virbr1'), /^BOOTPROTO=none$/m);
    assert.match(content('nm', i, 'kvmnet-virbr1.nmconnection'), /^method=manual$/m);
  });
});

// ---- the real tools ----

describe('persist golden files are accepted by the real tools', () => {
  const isRoot = process.getuid?.() === 0;

  // netplan: generate networkd files from the YAML; it fails on unknown keys and bad values.
  const netplan = which('netplan');
  const netplanGenerate = (root: string): ReturnType<typeof run> => {
    const env = { ...process.env };
    delete env['SNAP']; // inside a snap, `netplan generate` would call the host's netplan over D-Bus
    return run(netplan ?? 'netplan', ['generate', '--root-dir', root], { env });
  };
  for (const name of CASE_NAMES) {
    test(`${name}: netplan generate`, (t) => {
      if (!netplan) return t.skip('netplan is not installed (Debian package netplan.io)');
      withTmp((root) => {
        materialize(root, goldenFiles(name, 'netplan'));
        const r = netplanGenerate(root);
        assert.equal(r.code, 0, `netplan generate: ${r.out}`);
        assert.equal(r.out, '');
        const out = join(root, 'run/systemd/network');
        const netdev = readFileSync(join(out, '10-netplan-virbr1.netdev'), 'utf8');
        for (const line of ['Kind=bridge', `MACAddress=${MAC}`, 'STP=false', 'ForwardDelaySec=0']) {
          assert.match(netdev, new RegExp(`^${line}$`, 'm'), `netplan's virbr1.netdev lacks ${line}`);
        }
        assert.match(readFileSync(join(out, '10-netplan-eth1.network'), 'utf8'), /^Bridge=virbr1$/m);
        const network = readFileSync(join(out, '10-netplan-virbr1.network'), 'utf8');
        if (input(name).dhcp) assert.match(network, /^DHCP=ipv4$[^]*^ClientIdentifier=mac$/m);
        else assert.match(network, /^Address=192\.168\.100\.239\/24$/m);
      });
    });
  }

  test('netplan generate really checks: a misspelt key and a bad boolean are refused', (t) => {
    if (!netplan) return t.skip('netplan is not installed (Debian package netplan.io)');
    for (const [from, to, re] of [
      ['macaddress:', 'macadress:', /unknown key 'macadress'/],
      ['stp: false', 'stp: flase', /invalid boolean value 'flase'/],
    ] as const) {
      withTmp((root) => {
        const files = goldenFiles('static', 'netplan').map((f) => ({
          ...f,
          content: f.content.replace(from, to),
        }));
        materialize(root, files);
        const r = netplanGenerate(root);
        assert.notEqual(r.code, 0, `netplan generate accepted ${to}`);
        assert.match(r.stderr, re);
      });
    }
  });

  // ifupdown: Debian's default /etc/network/interfaces sources interfaces.d/*; a copy of it pointing
  // at the temporary directory. --state-dir keeps ifup/ifquery away from /run/network.
  const ifquery = which('ifquery');
  const ifup = which('ifup');
  const ifupdown = (root: string, cmd: string, args: string[]): ReturnType<typeof run> => {
    const main = join(root, 'etc/network/interfaces');
    mkdirSync(dirname(main), { recursive: true });
    writeFileSync(main, `source ${join(root, 'etc/network/interfaces.d')}/*\n`);
    return run(cmd, ['-i', main, `--state-dir=${join(root, 'state')}`, ...args]);
  };
  for (const name of CASE_NAMES) {
    test(`${name}: ifquery and ifup --no-act`, (t) => {
      if (!ifquery || !ifup) return t.skip('ifupdown is not installed (Debian package ifupdown)');
      withTmp((root) => {
        materialize(root, goldenFiles(name, 'ifupdown'));
        const list = ifupdown(root, ifquery, ['--list', '--allow=auto']);
        assert.equal(list.code, 0, `ifquery --list: ${list.out}`);
        assert.deepEqual(list.stdout.trim().split('\n'), ['lo', 'virbr1']);
        const q = ifupdown(root, ifquery, ['virbr1']);
        assert.equal(q.code, 0, `ifquery virbr1: ${q.out}`);
        for (const opt of ['bridge_ports: eth1', 'bridge_stp: off', 'bridge_fd: 0', `hwaddress: ${MAC}`]) {
          assert.match(q.stdout, new RegExp(`^${opt}$`, 'm'), `ifquery virbr1 lacks ${opt}`);
        }
        // --no-act prints the commands ifup would run (on stderr).
        const up = ifupdown(root, ifup, ['--no-act', 'virbr1']);
        assert.equal(up.code, 0, `ifup --no-act virbr1: ${up.out}`);
        const ran = up.out.split('\n').map((l) => l.trim().replace(/\s+/g, ' '));
        const i = input(name);
        const want: string[] = [];
        if (i.dhcp) want.push(`ip link set dev virbr1 address ${MAC}`);
        else {
          // (all addresses of the cases are in 192.168.100.0/24)
          for (const a of i.addresses) {
            want.push(
              `ip addr add ${a.split('/')[0]}/255.255.255.0 broadcast 192.168.100.255 dev virbr1 label virbr1`,
            );
          }
          want.push(`ip link set dev virbr1 ${i.mtu === undefined ? '' : `mtu ${i.mtu} `}address ${MAC} up`);
          want.push('ip route add default via 192.168.100.254 metric 100 dev virbr1 onlink');
        }
        for (const r of i.routes.filter((x) => x.dst !== 'default')) {
          want.push(`ip route add ${r.dst} via ${r.via} metric ${r.metric} dev virbr1`);
        }
        for (const cmd of want)
          assert.ok(ran.includes(cmd), `ifup --no-act virbr1 would not run: ${cmd}\n${up.out}`);
        const port = ifupdown(root, ifup, ['--no-act', 'eth1']);
        assert.equal(port.code, 0, `ifup --no-act eth1: ${port.out}`);
      });
    });
  }

  test('ifupdown really checks: an unknown method and a static stanza without address are refused', (t) => {
    if (!ifquery || !ifup) return t.skip('ifupdown is not installed (Debian package ifupdown)');
    withTmp((root) => {
      const [f] = goldenFiles('static', 'ifupdown');
      assert.ok(f);
      materialize(root, [{ ...f, content: f.content.replace('inet static', 'inet statik') }]);
      const r = ifupdown(root, ifquery, ['--list', '-a']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /kvmnet-virbr1:5: unknown or no method/);
    });
    withTmp((root) => {
      const [f] = goldenFiles('static', 'ifupdown');
      assert.ok(f);
      materialize(root, [{ ...f, content: f.content.replace(/^ {4}address .*\n/m, '') }]);
      const r = ifupdown(root, ifup, ['--no-act', 'virbr1']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /missing required variable: address/);
    });
  });

  // NetworkManager: libnm's keyfile reader (nm_keyfile_read) and nm_connection_verify() without
  // normalization, plus a check that every section and key is one libnm knows (the reader itself
  // ignores unknown keys silently). Prints what libnm understood, as JSON.
  const NM_CHECK = String.raw`
import json, re, sys
import gi
gi.require_version('NM', '1.0')
from gi.repository import GLib, GObject, NM

ALIASES = {'ethernet': '802-3-ethernet'}
KEYFILE_ONLY = re.compile(r'^(address|route|routing-rule)\d+(_options)?$')

def check(path):
    errors = []
    kf = GLib.KeyFile()
    try:
        kf.load_from_file(path, GLib.KeyFileFlags.NONE)
    except GLib.Error as e:
        return {'path': path, 'errors': ['syntax: ' + e.message]}
    for g in kf.get_groups()[0]:
        gtype = NM.Setting.lookup_type(ALIASES.get(g, g))
        if not gtype.is_a(NM.Setting):
            errors.append('unknown section [%s]' % g)
            continue
        props = {p.name for p in GObject.list_properties(gtype)}
        for k in kf.get_keys(g)[0]:
            if k not in props and not (g in ('ipv4', 'ipv6') and KEYFILE_ONLY.match(k)):
                errors.append('unknown key %s in [%s]' % (k, g))
    def handler(keyfile, connection, handler_type, data, user_data):
        if handler_type == NM.KeyfileHandlerType.WARN:
            errors.append('warning: ' + data.warn_get()[0])
        return False
    try:
        conn = NM.keyfile_read(kf, '/etc/NetworkManager/system-connections', NM.KeyfileHandlerFlags.NONE, handler, None)
        conn.verify()
    except GLib.Error as e:
        errors.append('invalid: ' + e.message)
        return {'path': path, 'errors': errors}
    c = conn.get_setting_connection()
    out = {'path': path, 'errors': errors, 'id': c.get_id(), 'uuid': c.get_uuid(),
           'type': c.get_connection_type(), 'interface': c.get_interface_name(), 'master': c.get_master(),
           'slaveType': c.get_slave_type(), 'autoconnect': c.get_autoconnect()}
    b = conn.get_setting_bridge()
    if b:
        out['bridge'] = {'mac': b.get_mac_address(), 'stp': b.get_stp(), 'forwardDelay': b.get_forward_delay()}
    w = conn.get_setting_wired()
    if w:
        out['mtu'] = w.get_mtu()
    ip4 = conn.get_setting_ip4_config()
    if ip4:
        addrs = [ip4.get_address(i) for i in range(ip4.get_num_addresses())]
        routes = [ip4.get_route(i) for i in range(ip4.get_num_routes())]
        out['ipv4'] = {'method': ip4.get_method(), 'gateway': ip4.get_gateway(),
                       'routeMetric': ip4.get_route_metric(), 'dhcpClientId': ip4.get_dhcp_client_id(),
                       'addresses': ['%s/%d' % (a.get_address(), a.get_prefix()) for a in addrs],
                       'routes': [['%s/%d' % (r.get_dest(), r.get_prefix()), r.get_next_hop(), r.get_metric()] for r in routes]}
    ip6 = conn.get_setting_ip6_config()
    if ip6:
        out['ipv6'] = {'method': ip6.get_method()}
    return out

print(json.dumps([check(p) for p in sys.argv[1:]]))
`;
  interface NmResult {
    path: string;
    errors: string[];
    id?: string;
    uuid?: string;
    type?: string;
    interface?: string;
    master?: string | null;
    slaveType?: string | null;
    autoconnect?: boolean;
    bridge?: { mac: string | null; stp: boolean; forwardDelay: number };
    mtu?: number;
    ipv4?: {
      method: string;
      gateway: string | null;
      routeMetric: number;
      dhcpClientId: string | null;
      addresses: string[];
      routes: Array<[string, string | null, number]>;
    };
    ipv6?: { method: string };
  }
  const PYTHON = '/usr/bin/python3'; // Debian's, which python3-gi belongs to (not a pyenv or venv one)
  const libnmMissing = ((): string | undefined => {
    if (!existsSync(PYTHON)) return 'python3 is not installed';
    const r = run(PYTHON, ['-c', "import gi; gi.require_version('NM', '1.0'); from gi.repository import NM"]);
    return r.code === 0
      ? undefined
      : 'libnm for python is not installed (Debian packages python3-gi gir1.2-nm-1.0)';
  })();
  const nmCheck = (root: string, files: PersistFile[]): NmResult[] => {
    materialize(root, files);
    const script = join(root, 'nmcheck.py');
    writeFileSync(script, NM_CHECK);
    const r = run(PYTHON, [script, ...files.map((f) => join(root, f.path))]);
    assert.equal(r.code, 0, `nmcheck.py: ${r.out}`);
    return JSON.parse(r.stdout) as NmResult[];
  };
  for (const name of CASE_NAMES) {
    test(`${name}: NetworkManager's keyfile reader (libnm) and verify()`, (t) => {
      if (libnmMissing) return t.skip(libnmMissing);
      withTmp((root) => {
        const [br, port] = nmCheck(root, goldenFiles(name, 'nm')).sort((a, b) =>
          a.type === 'bridge' ? -1 : b.type === 'bridge' ? 1 : 0,
        );
        assert.ok(br && port);
        assert.deepEqual(br.errors, [], `${br.path}: ${br.errors.join('; ')}`);
        assert.deepEqual(port.errors, [], `${port.path}: ${port.errors.join('; ')}`);
        const i = input(name);
        assert.equal(br.type, 'bridge');
        assert.equal(br.interface, 'virbr1');
        assert.equal(br.uuid, stableUuid('kvmnet/nm/virbr1'));
        assert.equal(br.autoconnect, true);
        assert.deepEqual(br.bridge, { mac: MAC.toUpperCase(), stp: false, forwardDelay: 0 });
        if (i.mtu !== undefined) assert.equal(br.mtu, i.mtu);
        const defaultRoute = i.routes.find((r) => r.dst === 'default');
        assert.deepEqual(br.ipv4, {
          method: i.dhcp ? 'auto' : 'manual',
          gateway: defaultRoute?.via ?? null,
          routeMetric: defaultRoute?.metric ?? -1,
          dhcpClientId: i.dhcp ? 'mac' : null,
          addresses: i.addresses,
          routes: i.routes
            .filter((r) => r.dst !== 'default')
            .map((r) => [r.dst, r.via ?? null, r.metric ?? -1]),
        });
        assert.deepEqual(br.ipv6, { method: 'auto' });
        assert.equal(port.type, '802-3-ethernet');
        assert.equal(port.interface, 'eth1');
        assert.equal(port.master, 'virbr1');
        assert.equal(port.slaveType, 'bridge');
        assert.equal(port.ipv4, undefined);
        if (i.mtu !== undefined) assert.equal(port.mtu, i.mtu);
      });
    });
  }

  test('the libnm check really checks: a misspelt key, a bad value and a bad address are refused', (t) => {
    if (libnmMissing) return t.skip(libnmMissing);
    const files = goldenFiles('static', 'nm');
    const br = files.find((f) => f.path.endsWith('kvmnet-virbr1.nmconnection'));
    assert.ok(br);
    const cases: Array<[string, string, RegExp]> = [
      ['mac-address=', 'mac-adress=', /unknown key mac-adress in \[bridge\]/],
      ['stp=false', 'stp=flase', /warning: .*"?stp"?.*cannot be interpreted|forward-delay/],
      ['gateway=192.168.100.254', 'gateway=192.168.100.300', /invalid: ipv4\.gateway/],
      ['method=manual', 'method=manuel', /invalid: ipv4\.method/],
    ];
    withTmp((root) => {
      const broken = cases.map(([from, to], k) => {
        assert.ok(br.content.includes(from), from);
        return { ...br, path: `/neg/${k}.nmconnection`, content: br.content.replace(from, to) };
      });
      const got = nmCheck(root, broken);
      cases.forEach(([, to, re], k) => {
        const errors = got[k]?.errors ?? [];
        assert.ok(
          errors.some((e) => re.test(e)),
          `${to}: expected an error matching ${String(re)}, got ${JSON.stringify(errors)}`,
        );
      });
    });
  });

  // systemd-networkd applies the files in private network, mount and PID namespaces: /run,
  // /etc/systemd and /var/lib/systemd are private tmpfs mounts there, and the PID namespace ends
  // every process when the script exits. The LAN is a veth peer with
  // the router's address and (when dnsmasq is installed) a DHCP server.
  const LAB = String.raw`set -eu
src=$1
out=$2
# (unshare --propagation=private made every mount private.) mount -n: no utab entries in the host's /run.
# A read-only sysfs of this namespace: networkd then does not wait for udev (as in a container).
mount -n -t sysfs -o ro sysfs /sys
# Private, empty /run, /etc/systemd and /var/lib/systemd (mounted over existing directories only,
# so that nothing is created on the host): networkd's state, no D-Bus, no udev, no host config.
for d in /run /etc/systemd /var/lib/systemd; do
  [ -d "$d" ] || { echo "$d does not exist" >&2; exit 3; }
  mount -n -t tmpfs tmpfs "$d"
done
mkdir -p /run/systemd /run/dbus /run/udev /etc/systemd/network /var/lib/systemd/network
cp "$src"/* /etc/systemd/network/
ip link set lo up
ip link add eth1 type veth peer name lan0
# Not the bridge's MAC: a bridge without a set MAC would take its port's, which would hide a
# MACAddress= that does not work.
ip link set eth1 address 02:00:00:00:00:01
ip addr add 192.168.100.254/24 dev lan0
ip link set lan0 up
if command -v dnsmasq >/dev/null; then
  dnsmasq --keep-in-foreground --conf-file=/dev/null --user=root --port=0 --interface=lan0 \
    --bind-interfaces --dhcp-range=192.168.100.100,192.168.100.199,255.255.255.0,1h \
    --dhcp-option=option:router,192.168.100.254 --dhcp-leasefile="$out/leases" --pid-file= \
    --log-facility="$out/dnsmasq.log" &
fi
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-networkd >"$out/networkd.log" 2>&1 &
# Wait (at most 20 s) until networkd reports both links configured.
i=0
configured=0
while [ $i -lt 200 ]; do
  configured=1
  for l in virbr1 eth1; do
    idx=$(cat /sys/class/net/$l/ifindex 2>/dev/null || echo none)
    grep -qx ADMIN_STATE=configured /run/systemd/netif/links/$idx 2>/dev/null || configured=0
  done
  [ $configured = 1 ] && break
  sleep 0.1
  i=$((i + 1))
done
echo $configured >"$out/configured"
ip -j -d link show >"$out/link.json"
ip -j -4 addr show >"$out/addr.json"
ip -j -4 route show >"$out/route.json"
`;
  const NETWORKD = '/lib/systemd/systemd-networkd';
  const networkdMissing = ((): string | undefined => {
    if (!existsSync(NETWORKD)) return 'systemd-networkd is not installed (Debian package systemd)';
    if (!isRoot) return 'the systemd-networkd lab needs root (namespaces)';
    if (!which('unshare')) return 'unshare is not installed (Debian package util-linux)';
    return undefined;
  })();
  interface Lab {
    configured: boolean;
    log: string;
    links: Array<{
      ifname: string;
      address: string;
      mtu: number;
      master?: string;
      linkinfo?: { info_kind?: string; info_data?: { forward_delay?: number; stp_state?: number } };
    }>;
    addrs: Array<{ ifname: string; addr_info: Array<{ local: string; prefixlen: number }> }>;
    routes: Array<{ dst: string; gateway?: string; dev: string; protocol: string; metric?: number }>;
    leases: string;
  }
  const networkdLab = (root: string, files: PersistFile[]): Lab => {
    const src = join(root, 'network');
    const out = join(root, 'out');
    mkdirSync(src, { recursive: true });
    mkdirSync(out, { recursive: true });
    for (const f of files) writeFileSync(join(src, f.path.split('/').pop() ?? ''), f.content);
    const script = join(root, 'lab.sh');
    writeFileSync(script, LAB);
    const r = run(
      'unshare',
      [
        '--net',
        '--mount',
        '--propagation=private',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        'sh',
        script,
        src,
        out,
      ],
      { timeoutMs: 60_000 },
    );
    const log = existsSync(join(out, 'networkd.log')) ? readFileSync(join(out, 'networkd.log'), 'utf8') : '';
    assert.equal(r.code, 0, `networkd lab: ${r.out}\n${log}`);
    const json = <T>(f: string): T => JSON.parse(readFileSync(join(out, f), 'utf8')) as T;
    return {
      configured: readFileSync(join(out, 'configured'), 'utf8').trim() === '1',
      log,
      links: json('link.json'),
      addrs: json('addr.json'),
      routes: json('route.json'),
      leases: existsSync(join(out, 'leases')) ? readFileSync(join(out, 'leases'), 'utf8') : '',
    };
  };
  /** networkd's complaints about its files: "<path>:<line>: <message>". */
  const parseWarnings = (log: string): string[] =>
    log.split('\n').filter((l) => /^\/etc\/systemd\/network\/[^:]+:\d+: /.test(l));

  for (const name of CASE_NAMES) {
    test(`${name}: systemd-networkd applies the files (namespace lab)`, (t) => {
      if (networkdMissing) return t.skip(networkdMissing);
      const i = input(name);
      if (i.dhcp && !which('dnsmasq'))
        return t.skip('dnsmasq is not installed (Debian package dnsmasq-base)');
      withTmp((root) => {
        const lab = networkdLab(root, goldenFiles(name, 'networkd'));
        assert.deepEqual(parseWarnings(lab.log), []);
        assert.ok(lab.configured, `networkd did not configure virbr1 and eth1:\n${lab.log}`);
        const br = lab.links.find((l) => l.ifname === 'virbr1');
        const eth = lab.links.find((l) => l.ifname === 'eth1');
        assert.ok(br && eth);
        assert.equal(br.linkinfo?.info_kind, 'bridge');
        assert.equal(br.address, MAC);
        assert.equal(br.linkinfo?.info_data?.stp_state, 0);
        assert.equal(br.linkinfo?.info_data?.forward_delay, 0);
        assert.equal(br.mtu, i.mtu ?? 1500);
        assert.equal(eth.master, 'virbr1');
        assert.equal(eth.mtu, i.mtu ?? 1500);
        const addrs = (lab.addrs.find((a) => a.ifname === 'virbr1')?.addr_info ?? []).map(
          (a) => `${a.local}/${a.prefixlen}`,
        );
        const routes = lab.routes
          .filter((r) => r.dev === 'virbr1' && r.protocol !== 'kernel')
          .map((r) => ({ dst: r.dst, via: r.gateway, metric: r.metric }));
        if (i.dhcp) {
          assert.equal(addrs.length, 1);
          assert.match(addrs[0] ?? '', /^192\.168\.100\.1\d\d\/24$/);
          assert.ok(routes.some((r) => r.dst === 'default' && r.via === '192.168.100.254'));
          // The lease was asked for with the bridge's (= the uplink's) MAC as client identifier.
          const ip = addrs[0]?.split('/')[0] ?? '';
          assert.match(lab.leases, new RegExp(` ${MAC} ${ip.replace(/\./g, '\\.')} \\S+ 01:${MAC}$`, 'm'));
        } else {
          assert.deepEqual(addrs, i.addresses);
          assert.deepEqual(
            routes,
            i.routes.map((r) => ({ dst: r.dst, via: r.via, metric: r.metric })),
          );
        }
      });
    });
  }

  test('the networkd lab really checks: a misspelt key and a bad value are reported', (t) => {
    if (networkdMissing) return t.skip(networkdMissing);
    withTmp((root) => {
      const files = goldenFiles('static', 'networkd').map((f) => ({
        ...f,
        content: f.content
          .replace('ForwardDelaySec=0', 'ForwardDelaySecs=0')
          .replace('STP=false', 'STP=flase'),
      }));
      const lab = networkdLab(root, files);
      const w = parseWarnings(lab.log);
      assert.ok(
        w.some((l) =>
          /10-kvmnet-virbr1\.netdev:\d+: Unknown key 'ForwardDelaySecs' in section \[Bridge\]/.test(l),
        ),
        w.join('\n'),
      );
      assert.ok(
        w.some((l) => /10-kvmnet-virbr1\.netdev:\d+: Failed to parse boolean value for STP=/.test(l)),
        w.join('\n'),
      );
    });
  });

  // ifcfg: no validator in Debian. initscripts sources ifcfg-* with bash and passes every line of
  // route-<dev> to `ip -4 route add`; both are replayed here.
  const IFCFG_KEYS = new Set([
    'DEVICE',
    'TYPE',
    'BOOTPROTO',
    'ONBOOT',
    'IPADDR',
    'PREFIX',
    'GATEWAY',
    'METRIC',
    'IPV4_ROUTE_METRIC',
    'MACADDR',
    'STP',
    'DELAY',
    'MTU',
    'BRIDGE',
  ]);
  const sourceIfcfg = (path: string): Record<string, string> => {
    // set -a exports each assignment; env -i keeps the environment out of the result.
    // --norc: Debian's bash reads /etc/bash.bashrc when its stdin is a socket, as node's pipes are.
    const r = run('env', ['-i', 'bash', '--norc', '-euc', 'set -a; . "$1"; set +a; env -0', 'ifcfg', path]);
    assert.equal(r.code, 0, `bash . ${path}: ${r.out}`);
    assert.equal(r.stderr, '');
    const vars: Record<string, string> = {};
    for (const kv of r.stdout.split('\0').filter((x) => x !== '')) {
      const eq = kv.indexOf('=');
      const k = kv.slice(0, eq);
      if (['PWD', 'SHLVL', '_', 'OLDPWD'].includes(k)) continue;
      vars[k] = kv.slice(eq + 1);
    }
    return vars;
  };
  for (const name of CASE_NAMES) {
    test(`${name}: ifcfg files as initscripts reads them (bash, ip route)`, (t) => {
      if (!which('bash')) return t.skip('bash is not installed');
      const i = input(name);
      withTmp((root) => {
        const files = goldenFiles(name, 'ifcfg');
        materialize(root, files);
        const dir = join(root, 'etc/sysconfig/network-scripts');
        const br = sourceIfcfg(join(dir, 'ifcfg-virbr1'));
        const eth = sourceIfcfg(join(dir, 'ifcfg-eth1'));
        for (const k of [...Object.keys(br), ...Object.keys(eth)]) {
          assert.ok(IFCFG_KEYS.has(k.replace(/\d+$/, '')), `unexpected ifcfg key ${k}`);
        }
        assert.equal(br['DEVICE'], 'virbr1');
        assert.equal(br['TYPE'], 'Bridge');
        assert.equal(br['BOOTPROTO'], i.dhcp ? 'dhcp' : 'none');
        assert.equal(br['MACADDR'], MAC);
        assert.equal(br['STP'], 'off');
        assert.equal(br['DELAY'], '0');
        assert.deepEqual(eth, {
          DEVICE: 'eth1',
          TYPE: 'Ethernet',
          ONBOOT: 'yes',
          BRIDGE: 'virbr1',
          ...(i.mtu === undefined ? {} : { MTU: String(i.mtu) }),
        });
        const routeFile = join(dir, 'route-virbr1');
        if (!existsSync(routeFile)) return;
        if (!isRoot || !which('unshare')) return t.skip('replaying route-virbr1 needs root and unshare');
        const addrs = i.addresses.map((a) => `ip addr add ${a} dev virbr1`).join('\n');
        // initscripts' handle_ip_file: every line that is not blank or a comment goes to ip route add.
        const script = `set -eu
ip link add virbr1 type bridge
${addrs}
ip link set virbr1 up
grep -Ev '^[[:space:]]*(#.*)?$' "$1" | while read -r line; do ip -4 route add $line; done
ip -4 route show dev virbr1 proto boot`;
        const r = run('unshare', ['--net', 'sh', '-c', script, 'sh', routeFile]);
        assert.equal(r.code, 0, `route-virbr1 replay: ${r.out}`);
        const want = i.routes
          .filter((x) => x.dst !== 'default')
          .map((x) => `${x.dst} via ${x.via} metric ${x.metric}`);
        assert.deepEqual(
          r.stdout
            .trim()
            .split('\n')
            .map((l) => l.trim()),
          want,
        );
      });
    });
  }
});
