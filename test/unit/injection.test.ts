// Names that reach a shell, a file path, an `ip -batch` line or a dnsmasq/nft config cannot inject
// anything (issue 8 point 7): every payload of INJECTION_PAYLOAD_CASES goes into every field of
// INJECTION_FIELD_CASES; it is refused (kvmnet's error, exit 2, one line) or kept as a plain name
// that renders into exactly the config lines a harmless name gives. test/integration/injection.test.ts
// sends the same payloads through the real CLI in a lab.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { INJECTION_FIELD_CASES, INJECTION_PAYLOAD_CASES, TRICKY_NAME_CASES } from '../lib/cases/input.js';
import { outcome } from '../lib/fc.js';
import { buildNetwork, type NetworkDef, type NetworkInput } from '../../src/model/network.js';
import { buildPort, type PortDef } from '../../src/model/port.js';
import { buildForward } from '../../src/model/forward.js';
import { parseDomainXml } from '../../src/model/domain.js';
import { importNetworkXml } from '../../src/model/libvirt.js';
import { renderDnsmasqConf, renderNetworkDhcpHosts, renderNetworkHosts } from '../../src/render/dnsmasq.js';
import { buildFragment, renderFragment } from '../../src/render/nft.js';
import { driverFor } from '../../src/drivers/registry.js';

type Field = (typeof INJECTION_FIELD_CASES)[number]['field'];
const BASE: NetworkInput = { name: 'lab', bridge: 'virbr1', subnet: '10.1.0.0/24' };
const PATHS = { pidFile: '/run/p', leaseFile: '/l', dhcpHostsFile: '/h', hostsFile: '/a' };
const net = buildNetwork(BASE, { others: [] });
const PORT: PortDef = {
  name: 'vnet0',
  network: 'lab',
  vm: 'kvm1',
  index: 0,
  mac: '52:54:00:00:00:01',
  ip: '10.1.0.10',
  model: 'virtio-net-pci',
  link: 'up',
};

/** Everything a network renders to: dnsmasq conf and hosts files, and its nft rules. */
function rendered(def: NetworkDef): string[] {
  const out = [
    ...renderDnsmasqConf(def, PATHS).split('\n'),
    ...renderNetworkDhcpHosts(def).split('\n'),
    ...renderNetworkHosts(def).split('\n'),
  ];
  out.push(...renderFragment(buildFragment(driverFor(def.mode).firewall(def, []))).split('\n'));
  return out.filter((l) => l !== '');
}

function xmlText(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;');
}

/**
 * Puts the payload into the field. Returns what was kept (undefined if refused) and the lines it
 * renders to, next to the lines a harmless value ("safe") renders to.
 */
const put: Record<Field, (p: string) => { kept: string; lines: string[]; safe: string[] } | undefined> = {
  network: (p) => net1({ ...BASE, name: p }, { ...BASE, name: 'safe' }, (d) => d.name),
  bridge: (p) => net1({ ...BASE, bridge: p }, { ...BASE, bridge: 'safe' }, (d) => d.bridge),
  uplink: (p) => {
    const r = outcome(() =>
      buildNetwork({ name: 'br', mode: 'bridge', bridge: 'br0', uplink: p }, { others: [] }),
    );
    return r.ok ? { kept: r.value.uplink ?? '', lines: [], safe: [] } : undefined;
  },
  forwardDev: (p) =>
    net1(
      { ...BASE, mode: 'nat', forwardDev: p },
      { ...BASE, mode: 'nat', forwardDev: 'safe' },
      (d) => d.forwardDev ?? '',
    ),
  domain: (p) => net1({ ...BASE, domain: p }, { ...BASE, domain: 'safe' }, (d) => d.domain ?? ''),
  vm: (p) => {
    const r = outcome(() => buildPort({ network: 'lab', vm: p }, { net, ports: [], links: new Set() }));
    return r.ok ? { kept: r.value.vm, lines: [], safe: [] } : undefined;
  },
  'port model': (p) => {
    const r = outcome(() =>
      buildPort({ network: 'lab', vm: 'kvm2', model: p }, { net, ports: [], links: new Set() }),
    );
    return r.ok ? { kept: r.value.model, lines: [], safe: [] } : undefined;
  },
  'forward description': (p) => {
    const r = outcome(() =>
      buildForward(
        { network: 'lab', proto: 'tcp', ports: '8080', target: 'kvm1:80', description: p },
        { net, allowed: true, ports: [PORT], forwards: [] },
      ),
    );
    return r.ok ? { kept: r.value.description ?? '', lines: [], safe: [] } : undefined;
  },
  'forward target': (p) => {
    const r = outcome(() =>
      buildForward(
        { network: 'lab', proto: 'tcp', ports: '8080', target: `${p}:80` },
        { net, allowed: true, ports: [PORT], forwards: [] },
      ),
    );
    return r.ok ? { kept: r.value.target, lines: [], safe: [] } : undefined;
  },
  'dhcpHosts name': (p) =>
    net1(
      { ...BASE, dhcpHosts: [{ name: p, ip: '10.1.0.9' }] },
      { ...BASE, dhcpHosts: [{ name: 'safe', ip: '10.1.0.9' }] },
      (d) => d.dhcpHosts?.[0]?.name ?? '',
    ),
  'dns hosts hostname': (p) =>
    net1(
      { ...BASE, dns: { hosts: [{ ip: '10.1.0.9', hostnames: [p] }] } },
      { ...BASE, dns: { hosts: [{ ip: '10.1.0.9', hostnames: ['safe'] }] } },
      (d) => d.dns?.hosts?.[0]?.hostnames[0] ?? '',
    ),
  'dns srv service/target': (p) =>
    net1(
      { ...BASE, dns: { srv: [{ service: p, protocol: 'tcp', target: p, port: 1 }] } },
      { ...BASE, dns: { srv: [{ service: 'safe', protocol: 'tcp', target: 'safe', port: 1 }] } },
      (d) => d.dns?.srv?.[0]?.service ?? '',
    ),
  'dns txt name': (p) =>
    net1(
      { ...BASE, dns: { txt: [{ name: p, value: 'v' }] } },
      { ...BASE, dns: { txt: [{ name: 'safe', value: 'v' }] } },
      (d) => d.dns?.txt?.[0]?.name ?? '',
    ),
  'dns txt value': (p) =>
    net1(
      { ...BASE, dns: { txt: [{ name: 'info', value: p }] } },
      { ...BASE, dns: { txt: [{ name: 'info', value: 'safe' }] } },
      (d) => d.dns?.txt?.[0]?.value ?? '',
    ),
  'dns forwarder domain': (p) =>
    net1(
      { ...BASE, dns: { forwarders: [{ domain: p, addr: '1.1.1.1' }] } },
      { ...BASE, dns: { forwarders: [{ domain: 'safe', addr: '1.1.1.1' }] } },
      (d) => d.dns?.forwarders?.[0]?.domain ?? '',
    ),
  'domain XML target dev': (p) => {
    const d = parseDomainXml(
      `<domain><name>x</name><devices><interface type='bridge'><mac address='52:54:00:00:00:01'/>` +
        `<source bridge='virbr1'/><target dev='${xmlText(p)}'/></interface></devices></domain>`,
    );
    const dev = d.interfaces[0]?.dev;
    return dev === undefined
      ? undefined
      : { kept: dev, lines: [`link set dev ${dev} master virbr1`], safe: ['x'] };
  },
  'libvirt XML name': (p) => {
    const xml = (n: string): string =>
      `<network><name>${xmlText(n)}</name><bridge name='virbr1'/><ip address='10.1.0.1' netmask='255.255.255.0'/></network>`;
    const r = outcome(() => importNetworkXml(xml(p)));
    if (!r.ok) return undefined;
    const safe = importNetworkXml(xml('safe')).input;
    return net1(r.value.input, safe, (d) => d.name);
  },
};

/** Builds a network with the payload and one with a harmless value: kept value and both renderings. */
function net1(
  input: NetworkInput,
  safe: NetworkInput,
  pick: (d: NetworkDef) => string,
): { kept: string; lines: string[]; safe: string[] } | undefined {
  const r = outcome(() => buildNetwork(input, { others: [] }));
  if (!r.ok) return undefined;
  return {
    kept: pick(r.value),
    lines: rendered(r.value),
    safe: rendered(buildNetwork(safe, { others: [] })),
  };
}

/** Fields of free text, checked for what they may not hold rather than for a name's shape. */
const FREE_TEXT = new Set<Field>(['forward description', 'dns txt value']);

/** A value kept for a field that reaches a config or command line: a plain token. */
const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

describe('injection payloads in every field that reaches a shell, a path or a config', () => {
  for (const f of INJECTION_FIELD_CASES) {
    test(`${f.field} (${f.where})`, () => {
      const accepted: string[] = [];
      for (const p of INJECTION_PAYLOAD_CASES) {
        const r = put[f.field](p.value);
        if (!r) continue;
        accepted.push(p.name);
        if (FREE_TEXT.has(f.field)) {
          // Free text: printable ASCII without quotes, backslashes, commas or comments, on one
          // config line at most (the description is only stored and shown).
          assert.match(r.kept, /^[\x20-\x7e]{0,255}$/, p.name);
          assert.doesNotMatch(r.kept, /["\\]/, p.name);
          if (f.field === 'dns txt value') assert.doesNotMatch(r.kept, /[,#]/, p.name);
          assert.equal(r.lines.length, r.safe.length, `${f.field} ${p.name}: ${r.lines.join(' | ')}`);
          continue;
        }
        assert.match(r.kept, PLAIN, `${f.field} kept ${JSON.stringify(r.kept)} (${p.name})`);
        // The same config lines as a harmless value, one for one.
        assert.equal(r.lines.length, r.safe.length, `${f.field} ${p.name}: ${r.lines.join(' | ')}`);
      }
      // Payloads are hostile: only free text takes (some of) them.
      if (!FREE_TEXT.has(f.field))
        assert.deepEqual(accepted, [], `${f.field} accepted ${accepted.join(', ')}`);
    });
  }
});

describe('legal names that look like trouble are kept and render plainly', () => {
  for (const c of TRICKY_NAME_CASES) {
    test(`${c.field} "${c.value}"`, () => {
      const field: Field = c.field === 'vm' ? 'vm' : c.field;
      const r = put[field](c.value);
      assert.ok(r, `${c.field} "${c.value}" is refused`);
      assert.equal(r.kept, c.value);
      assert.equal(r.lines.length, r.safe.length);
      if (c.field === 'bridge')
        assert.ok(
          r.lines.some((l) => l.includes(`iifname "${c.value}"`)),
          'quoted in nft',
        );
    });
  }
});
