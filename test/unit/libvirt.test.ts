// libvirt network XML: import (refusals name their XPath), export, define → dumpxml → define round
// trips, and the libvirt test corpus (../shared/corpus/libvirt): every network XML is imported or
// refused with an XPath, and the dnsmasq config of the imported ones is equivalent to libvirt's.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmnetError } from '../../src/model/errors.js';
import { importNetworkXml, isNetworkXml, renderNetworkXml } from '../../src/model/libvirt.js';
import { buildNetwork, type NetworkDef, type NetworkInput } from '../../src/model/network.js';
import { networkInputOf } from '../../src/model/input.js';
import { networkBody } from '../../src/daemon/schemas.js';
import { parseDefinitions, renderDefinitions } from '../../src/model/definitions.js';
import { renderDnsmasqConf, renderNetworkDhcpHosts } from '../../src/render/dnsmasq.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CORPUS = resolve(REPO, '../shared/corpus/libvirt');

function define(xml: string): NetworkDef {
  const { input } = importNetworkXml(xml);
  return buildNetwork({ ...input, bridge: input.bridge ?? 'virbr0' }, { others: [] });
}

function refusal(xml: string): KvmnetError {
  try {
    importNetworkXml(xml);
  } catch (e) {
    assert.ok(e instanceof KvmnetError, String(e));
    assert.equal(e.kind, 'input');
    assert.equal(e.exitCode, 2);
    return e;
  }
  assert.fail('expected a refusal');
}

const FULL = `<?xml version="1.0"?>
<!-- a comment -->
<network>
  <name>lab</name>
  <uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>
  <forward mode='nat'/>
  <bridge name='virbr7' stp='on' delay='2'/>
  <mac address='52:54:00:17:3F:37'/>
  <mtu size='9000'/>
  <domain name='lab' localOnly='yes'/>
  <dns forwardPlainNames='no'>
    <forwarder addr='8.8.8.8'/>
    <forwarder domain='corp.example' addr='10.1.1.1'/>
    <forwarder domain='lan.example'/>
    <host ip='10.10.0.1'><hostname>gw</hostname><hostname>gateway</hostname></host>
    <srv service='ldap' protocol='tcp' domain='lab' target='dc.lab' port='389' priority='1' weight='10'/>
    <txt name='info' value='kvmnet lab'/>
  </dns>
  <ip address='10.10.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.10.0.100' end='10.10.0.199'><lease expiry='2' unit='hours'/></range>
      <host mac='52:54:00:aa:bb:cc' name='web' ip='10.10.0.10'><lease expiry='0'/></host>
      <host name='db' ip='10.10.0.11'/>
    </dhcp>
  </ip>
</network>
`;

describe('host bridge', () => {
  test("<forward mode='bridge'/> on a named bridge imports as a bridged network without uplink", () => {
    const r = importNetworkXml(
      "<network><name>hb</name><forward mode='bridge'/><bridge name='br0'/></network>",
    );
    assert.deepEqual(
      { name: r.input.name, mode: r.input.mode, bridge: r.input.bridge, uplink: r.input.uplink },
      { name: 'hb', mode: 'bridge', bridge: 'br0', uplink: undefined },
    );
  });
});

describe('libvirt XML import', () => {
  test('recognises network XML by content', () => {
    assert.equal(isNetworkXml(FULL), true);
    assert.equal(isNetworkXml('  <network>'), true);
    assert.equal(isNetworkXml('<networks>'), false);
    assert.equal(isNetworkXml('lab'), false);
    assert.equal(isNetworkXml('<host mac="x"/>'), false);
  });

  test('maps every supported element', () => {
    const d = define(FULL);
    assert.deepEqual(d, {
      name: 'lab',
      mode: 'nat',
      bridge: 'virbr7',
      mac: '52:54:00:17:3f:37',
      subnet: '10.10.0.0/24',
      gateway: '10.10.0.1',
      dhcp: { start: '10.10.0.100', end: '10.10.0.199' },
      domain: 'lab',
      autostart: false,
      uuid: '81ff0d90-c91e-6742-64da-4a736edb9a9b',
      mtu: 9000,
      stp: true,
      forwardDelay: 2,
      leaseTime: 7200,
      dhcpHosts: [
        { ip: '10.10.0.10', mac: '52:54:00:aa:bb:cc', name: 'web', leaseTime: 0 },
        { ip: '10.10.0.11', name: 'db' },
      ],
      dns: {
        forwardPlainNames: false,
        hosts: [{ ip: '10.10.0.1', hostnames: ['gw', 'gateway'] }],
        forwarders: [
          { addr: '8.8.8.8' },
          { domain: 'corp.example', addr: '10.1.1.1' },
          { domain: 'lan.example' },
        ],
        srv: [
          {
            service: 'ldap',
            protocol: 'tcp',
            domain: 'lab',
            target: 'dc.lab',
            port: 389,
            priority: 1,
            weight: 10,
          },
        ],
        txt: [{ name: 'info', value: 'kvmnet lab' }],
      },
    });
  });

  test('modes: no <forward> is isolated, route is routed, <forward/> is nat', () => {
    const base = (fwd: string): string =>
      `<network><name>n</name>${fwd}<ip address='10.0.0.1' prefix='24'/></network>`;
    assert.equal(define(base('')).mode, 'isolated');
    assert.equal(define(base("<forward mode='route'/>")).mode, 'routed');
    assert.equal(define(base('<forward/>')).mode, 'nat');
    assert.equal(define(base('')).dhcp, null);
    assert.equal(define(base("<forward mode='open'/>")).mode, 'open');
  });

  test('<forward dev> (and its repeated <interface dev>) restricts nat and route networks', () => {
    const base = (fwd: string): string =>
      `<network><name>n</name>${fwd}<ip address='10.0.0.1' prefix='24'/></network>`;
    assert.equal(define(base("<forward mode='nat' dev='eth1'/>")).forwardDev, 'eth1');
    const both = define(base("<forward dev='eth1' mode='route'><interface dev='eth1'/></forward>"));
    assert.equal(both.mode, 'routed');
    assert.equal(both.forwardDev, 'eth1');
    assert.equal(define(base("<forward mode='nat'><interface dev='eth2'/></forward>")).forwardDev, 'eth2');
    assert.equal(define(base('<forward/>')).forwardDev, undefined);
  });

  const cases: Array<[string, string, RegExp]> = [
    [
      'a second IPv4 address',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'/><ip address='10.1.0.1' prefix='24'/></network>",
      /^\/network\/ip\[2\]: a second IPv4 address/,
    ],
    [
      'IPv6',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'/><ip family='ipv6' address='fd00::1' prefix='64'/></network>",
      /^\/network\/ip\[2\]: IPv6 addresses are not supported/,
    ],
    [
      'forward dev on an open network',
      "<network><name>n</name><forward mode='open' dev='eth0'/><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/forward\/@dev: dev= with mode 'open'/,
    ],
    [
      'a second forward interface',
      "<network><name>n</name><forward mode='nat' dev='eth0'><interface dev='eth0'/><interface dev='eth1'/></forward><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/forward\/interface\[2\]: a second forward <interface>/,
    ],
    [
      'a forward interface other than dev',
      "<network><name>n</name><forward mode='nat' dev='eth0'><interface dev='eth1'/></forward><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/forward\/interface\/@dev: interface eth1 is not the forward dev eth0/,
    ],
    [
      'a bad forward dev',
      "<network><name>n</name><forward mode='nat' dev='eth 0'/><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/forward\/@dev: forwardDev "eth 0" is not an interface name/,
    ],
    [
      'two DHCP ranges',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/><range start='10.0.0.20' end='10.0.0.29'/></dhcp></ip></network>",
      /^\/network\/ip\/dhcp\/range\[2\]: a second DHCP range/,
    ],
    [
      'an unknown element',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'/><bandwidth/></network>",
      /^\/network\/bandwidth: <bandwidth> is not supported/,
    ],
    [
      'an unknown attribute',
      "<network><name>n</name><bridge name='virbr3' zone='trusted'/><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/bridge\/@zone: /,
    ],
    [
      'a host outside the subnet',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/><host mac='52:54:00:00:00:01' ip='10.0.1.5'/></dhcp></ip></network>",
      /^\/network\/ip\/dhcp\/host\/@ip: dhcpHosts\.0\.ip 10\.0\.1\.5 is not a host address/,
    ],
    [
      'a bad MAC of a second host',
      "<network><name>n</name><ip address='10.0.0.1' prefix='24'><dhcp><range start='10.0.0.2' end='10.0.0.9'/><host name='a' ip='10.0.0.5'/><host mac='01:00:00:00:00:01' ip='10.0.0.6'/></dhcp></ip></network>",
      /^\/network\/ip\/dhcp\/host\[2\]\/@mac: /,
    ],
    [
      'a bad name',
      "<network><name>a'b</name><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/name: /,
    ],
    ['not well-formed', '<network><name>n</network>', /^\/: not well-formed XML/],
    ['no ip', '<network><name>n</name></network>', /^\/network: an isolated network without an IPv4 <ip>/],
    [
      "localOnly='no'",
      "<network><name>n</name><domain name='lab' localOnly='no'/><ip address='10.0.0.1' prefix='24'/></network>",
      /^\/network\/domain\/@localOnly: /,
    ],
  ];
  for (const [what, xml, re] of cases) {
    test(`refuses ${what} with its XPath and a hint`, () => {
      const e = refusal(xml);
      assert.match(e.message, re);
      assert.ok(e.hint && e.hint.length > 0);
    });
  }

  test('foreign metadata is noted, not kept', () => {
    const r = importNetworkXml(
      "<network><name>n</name><metadata><app1:foo xmlns:app1='http://app1.org/app1/'>x</app1:foo></metadata><ip address='10.0.0.1' prefix='24'/></network>",
    );
    assert.deepEqual(r.notes, ["/network/metadata/app1:foo: another application's metadata, not kept"]);
  });
});

describe('libvirt XML export', () => {
  const roundTrip = (d: NetworkDef): NetworkDef => define(renderNetworkXml(d));

  test('define → dumpxml → define gives the same definition', () => {
    const d = define(FULL);
    assert.deepEqual(roundTrip(d), d);
    const autostart = { ...d, autostart: true };
    assert.deepEqual(roundTrip(autostart), autostart);
  });

  test('round trips plain kvmnet networks of every L3 mode', () => {
    for (const mode of ['nat', 'isolated', 'routed', 'open']) {
      const d = buildNetwork(
        { name: `n-${mode}`, mode, subnet: '10.20.0.0/16', bridge: 'virbr4' },
        { others: [] },
      );
      assert.deepEqual(roundTrip(d), d);
      const nodhcp = buildNetwork(
        { name: 'x', mode, subnet: '10.20.0.0/24', bridge: 'virbr4', dhcp: null },
        { others: [] },
      );
      assert.deepEqual(roundTrip(nodhcp), nodhcp);
    }
    const noDns = buildNetwork(
      { name: 'q', subnet: '10.3.0.0/24', bridge: 'virbr5', dns: { enable: false } },
      { others: [] },
    );
    assert.deepEqual(roundTrip(noDns), noDns);
    for (const mode of ['nat', 'routed']) {
      const dev = buildNetwork(
        { name: 'd', mode, subnet: '10.4.0.0/24', bridge: 'virbr6', forwardDev: 'eth1' },
        { others: [] },
      );
      assert.match(renderNetworkXml(dev), /<forward mode="(nat|route)" dev="eth1"\/>/);
      assert.deepEqual(roundTrip(dev), dev);
    }
    const open = buildNetwork(
      { name: 'o', mode: 'open', subnet: '10.5.0.0/24', bridge: 'virbr8' },
      { others: [] },
    );
    assert.match(renderNetworkXml(open), /<forward mode="open"\/>/);
  });

  test('a bridged network round trips through kvmnet metadata', () => {
    const d = buildNetwork(
      { name: 'lan', mode: 'bridge', uplink: 'eth1', bridge: 'virbr1', autostart: true },
      { others: [] },
    );
    const xml = renderNetworkXml(d);
    assert.match(xml, /<forward mode="bridge"\/>/);
    assert.match(xml, /<kvmnet:network xmlns:kvmnet="[^"]+" uplink="eth1" autostart="yes"\/>/);
    assert.deepEqual(roundTrip(d), d);
  });

  test('a nat network without flow offload round trips through kvmnet metadata (offload="no")', () => {
    const d = buildNetwork(
      { name: 'nf', subnet: '10.6.0.0/24', bridge: 'virbr6', offload: false },
      { others: [] },
    );
    assert.match(renderNetworkXml(d), /<kvmnet:network xmlns:kvmnet="[^"]+" offload="no"\/>/);
    assert.deepEqual(roundTrip(d), d);
    const on = buildNetwork({ name: 'nf', subnet: '10.6.0.0/24', bridge: 'virbr6' }, { others: [] });
    assert.doesNotMatch(renderNetworkXml(on), /offload/);
    assert.deepEqual(roundTrip(on), on);
  });

  test('escapes text and attributes', () => {
    const d = define(FULL);
    const xml = renderNetworkXml({ ...d, dns: { txt: [{ name: 'a', value: 'x<y & "z"' }] } });
    assert.match(xml, /value="x&lt;y &amp; &quot;z&quot;"/);
  });

  test('the YAML definitions file round trips the new fields', () => {
    const d = { ...define(FULL), forwardDev: 'eth1' };
    const back = parseDefinitions(renderDefinitions([d]), 'x.yaml');
    assert.equal(back.length, 1);
    const input = back[0];
    assert.ok(input);
    assert.deepEqual(buildNetwork(input, { others: [] }), d);
  });
});

// ---- the corpus ----------------------------------------------------------------------------------

interface Outcome {
  file: string;
  result: 'imported' | 'refused' | 'not-a-network' | 'link' | 'dangling-link';
  detail: string;
  def?: NetworkDef;
  input?: NetworkInput;
}

function walkCorpus(): Outcome[] {
  const out: Outcome[] = [];
  for (const dir of readdirSync(CORPUS).sort()) {
    const full = join(CORPUS, dir);
    if (!statSync(full).isDirectory()) continue;
    for (const f of readdirSync(full).sort()) {
      if (!f.endsWith('.xml')) continue;
      const file = `${dir}/${f}`;
      const text = readFileSync(join(full, f), 'utf8');
      // libvirt's git symlinks, stored as a file holding the target path.
      if (/^[\w./-]+\.xml$/.test(text.trim())) {
        const target = resolve(full, text.trim());
        out.push({ file, result: existsSync(target) ? 'link' : 'dangling-link', detail: text.trim() });
        continue;
      }
      if (!isNetworkXml(text)) {
        out.push({ file, result: 'not-a-network', detail: 'an update snippet' });
        continue;
      }
      try {
        const { input } = importNetworkXml(text);
        const def = buildNetwork({ ...input, bridge: input.bridge ?? 'virbr0' }, { others: [] });
        out.push({ file, result: 'imported', detail: '', def, input });
      } catch (e) {
        // A crash (anything but an input error) fails here.
        assert.ok(e instanceof KvmnetError && e.kind === 'input', `${file}: ${String(e)}`);
        assert.match(e.message, /^\/\S*: /, `${file}: message must start with an XPath: ${e.message}`);
        assert.ok(e.hint, `${file}: no hint`);
        out.push({ file, result: 'refused', detail: e.message });
      }
    }
  }
  return out;
}

/** Options kvmnet writes on purpose that libvirt does not (or the reverse); see docs/libvirt.md. */
const KVMNET_ONLY = new Set(['domain-needed', 'no-ping']);
const LIBVIRT_ONLY = new Set(['ra-param']); // IPv6 router advertisements: kvmnet is IPv4-only
const PATHS = new Set(['pid-file', 'dhcp-leasefile', 'dhcp-hostsfile', 'addn-hosts', 'conf-file']);

function confLines(text: string, drop: Set<string>): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .filter((l) => {
      const key = l.split('=')[0] ?? '';
      return !PATHS.has(key) && !drop.has(key);
    })
    .sort();
}

/** Lease times as seconds: kvmnet writes the largest whole unit (5m), libvirt the unit given (300s). */
function leaseSeconds(line: string): string {
  return line.replace(
    /,(\d+)([smh])$/,
    (_, n: string, u: string) => `,${Number(n) * { s: 1, m: 60, h: 3600 }[u as 's' | 'm' | 'h']}s`,
  );
}

/**
 * Corpus pairs whose .conf does not belong to the .xml beside it (MANIFEST.md: "NOT consistent"):
 * compared against nothing.
 */
const INCONSISTENT = new Map([
  [
    'networkxml2confdata/nat-network-dns-hosts.xml',
    'the conf implies forwardPlainNames=no, the xml lacks it',
  ],
  ['networkxml2confdata/routed-network.xml', 'OLD-FORMAT conf (no except-interface=lo)'],
]);

function renderFor(def: NetworkDef): string {
  return renderDnsmasqConf(def, { pidFile: '/p', leaseFile: '/l', dhcpHostsFile: '/h', hostsFile: '/a' });
}

describe('libvirt corpus', () => {
  // CI always has ../shared beside the clone: there a missing corpus is a failure, not a skip.
  const skip = !existsSync(CORPUS) && process.env.CI !== 'true';
  const outcomes = skip ? [] : walkCorpus();
  const count = (r: Outcome['result']): number => outcomes.filter((o) => o.result === r).length;

  test('every network XML is imported or refused with an XPath', { skip }, () => {
    assert.deepEqual(
      {
        imported: count('imported'),
        refused: count('refused'),
        links: count('link'),
        danglingLinks: count('dangling-link'),
        snippets: count('not-a-network'),
      },
      { imported: 39, refused: 132, links: 13, danglingLinks: 1, snippets: 27 },
    );
  });

  // `kvmnet net define FILE.xml` hands the imported input to a running daemon as the body of
  // POST /api/networks: the body's schema must take each one, and the daemon read it back unchanged.
  test("each imported network passes the API's network body unchanged", { skip }, () => {
    const imported = outcomes.filter((o) => o.result === 'imported');
    assert.ok(imported.length > 0);
    for (const o of imported) {
      const sent = JSON.parse(JSON.stringify(o.input)) as Record<string, unknown>;
      const parsed = networkBody.safeParse(sent);
      assert.ok(parsed.success, `${o.file}: ${parsed.success ? '' : parsed.error.message}`);
      const { name, mode, ...rest } = parsed.data;
      assert.deepEqual(networkInputOf(name, { ...rest, mode: mode ?? 'nat' }), sent, o.file);
    }
  });

  test('refusals by reason', { skip }, () => {
    const reasons = new Map<string, number>();
    for (const o of outcomes.filter((x) => x.result === 'refused')) {
      const key = o.detail
        .replace(/\[\d+\]/g, '')
        .replace(/ '[^']*'/, " '…'")
        .split(':')
        .slice(0, 2)
        .join(':');
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries([...reasons].sort()), {
      '/network/@ipv6: attribute ipv6 is not supported': 2,
      '/network/bandwidth: <bandwidth> is not supported': 2,
      '/network/bridge/@macTableManager: attribute macTableManager is not supported': 5,
      '/network/bridge/@zone: attribute zone is not supported': 2,
      '/network/dns/forwarder/@port: attribute port is not supported': 2,
      '/network/dns/host/@ip: IPv6 DNS hosts are not supported': 7,
      "/network/dns: enable='no' with DNS records or options": 1,
      '/network/dnsmasq:options': 2,
      "/network/forward/@dev: dev= with mode '…' is not supported": 2,
      "/network/forward/@mode: mode '…' (macvtap or SR-IOV) is not supported": 16,
      '/network/forward/interface: <interface> is not supported': 1,
      '/network/forward/interface: a second forward <interface> is not supported': 1,
      '/network/forward/nat: <nat> is not supported': 12,
      '/network/ip/@localPtr: attribute localPtr is not supported': 3,
      '/network/ip/dhcp/bootp: <bootp> is not supported': 7,
      '/network/ip/dhcp: static DHCP hosts without a <range> are not supported': 5,
      '/network/ip/tftp: <tftp> is not supported': 3,
      '/network/ip: IPv6 addresses are not supported': 5,
      '/network/ip: a second IPv4 address is not supported': 44,
      '/network/port: <port> is not supported': 2,
      '/network/virtualport: <virtualport> is not supported': 5,
      '/network: an isolated network without an IPv4 <ip> is not supported': 3,
    });
  });

  test("the imported networks' dnsmasq config is equivalent to libvirt's", { skip }, () => {
    const compared: string[] = [];
    for (const o of outcomes.filter((x) => x.result === 'imported')) {
      const [dir, f] = o.file.split('/') as [string, string];
      if (dir !== 'networkxml2confdata' && dir !== 'networkxmlconfdata') continue;
      const t = f.replace(/(\.expect)?\.xml$/, '');
      // networkxmlconfdata's .expect.xml: the conf may be under either folder (see the MANIFEST).
      // The newest conf of the test may be under the other folder (leasetime-*, open-network).
      const conf = [dir, 'networkxml2confdata', 'networkxmlconfdata']
        .map((d) => join(CORPUS, d, `${t}.conf`))
        .find(existsSync);
      if (!conf || !o.def || INCONSISTENT.has(o.file)) continue;
      const want = readFileSync(conf, 'utf8');
      assert.deepEqual(
        confLines(renderFor(o.def), KVMNET_ONLY),
        confLines(want, LIBVIRT_ONLY),
        `${o.file} vs ${conf}`,
      );
      // The hostsfile may be under networkxml2confdata only (MANIFEST: leasetime-hours).
      const hosts = [
        conf.replace(/\.conf$/, '.hostsfile'),
        join(CORPUS, 'networkxml2confdata', `${t}.hostsfile`),
      ].find(existsSync);
      const wantHosts = hosts ? readFileSync(hosts, 'utf8') : '';
      assert.deepEqual(
        renderNetworkDhcpHosts(o.def).split('\n').map(leaseSeconds).sort(),
        wantHosts.split('\n').map(leaseSeconds).sort(),
        `${o.file} hosts`,
      );
      compared.push(o.file);
    }
    assert.deepEqual(compared, [
      'networkxml2confdata/isolated-network.xml',
      'networkxml2confdata/leasetime-hours.xml',
      'networkxml2confdata/leasetime-infinite.xml',
      'networkxml2confdata/leasetime-minutes.xml',
      'networkxml2confdata/leasetime-seconds.xml',
      'networkxml2confdata/nat-network-dns-forward-plain.xml',
      'networkxml2confdata/nat-network-dns-forwarder-no-resolv.xml',
      'networkxml2confdata/nat-network-dns-forwarders.xml',
      'networkxml2confdata/open-network.xml',
      'networkxmlconfdata/isolated-network.expect.xml',
      'networkxmlconfdata/leasetime-hours.xml',
      'networkxmlconfdata/leasetime-infinite.xml',
      'networkxmlconfdata/leasetime-seconds.xml',
      'networkxmlconfdata/nat-network-dns-forward-plain.expect.xml',
      'networkxmlconfdata/nat-network-dns-forwarder-no-resolv.expect.xml',
      'networkxmlconfdata/nat-network-dns-local-domain.expect.xml',
      'networkxmlconfdata/open-network.expect.xml',
      'networkxmlconfdata/routed-network-no-dns.expect.xml',
      'networkxmlconfdata/routed-network-no-dns.xml',
    ]);
    // The imported files with a .conf that is not comparable (MANIFEST.md), and why.
    assert.deepEqual(
      outcomes.filter((o) => o.result === 'imported' && INCONSISTENT.has(o.file)).map((o) => o.file),
      [...INCONSISTENT.keys()].sort(),
    );
  });
});
