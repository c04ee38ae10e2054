// Property tests of every parser of user input (issue 8 point 7): the YAML definitions file, the
// libvirt network XML and domain <interface> importers, and the IPv4/CIDR/MAC/port/forward parsers.
// Each property runs KVMNET_FC_RUNS times (default per property below) from a fixed seed
// (KVMNET_FC_SEED, default 20261201): inputs either parse or are refused with kvmnet's own error,
// one line, exit 2; valid inputs round-trip. The list of properties is MODEL_PROPERTY_CASES.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { MODEL_PROPERTY_CASES } from '../lib/cases/input.js';
import { fcAssert, hostileString, hostileValue, outcome, shaped } from '../lib/fc.js';
import { parseDefinitionsFile, renderDefinitions } from '../../src/model/definitions.js';
import { importNetworkXml, renderNetworkXml } from '../../src/model/libvirt.js';
import { parseDomainXml } from '../../src/model/domain.js';
import { renderHookScript } from '../../src/engine/hook.js';
import { formatCidr, formatIpv4, parseCidr, parseIpv4 } from '../../src/model/ipv4.js';
import { normalizeMac } from '../../src/model/mac.js';
import { buildNetwork, parseSubnet, type NetworkDef, type NetworkInput } from '../../src/model/network.js';
import { networkFileSchema } from '../../src/model/network-schema.js';
import { networkInputOf } from '../../src/model/input.js';
import { buildForward, parsePortRange, parseTarget, type ForwardDef } from '../../src/model/forward.js';
import { buildPort, VM_RE, type PortDef } from '../../src/model/port.js';
import { renderDnsmasqConf, renderNetworkDhcpHosts, renderNetworkHosts } from '../../src/render/dnsmasq.js';

// ---- generators of valid values ----

const nameArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/);
const bridgeArb = fc
  .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/)
  .filter((b) => b !== '..' && b !== '.');
const labelArb = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const domainArb = fc.array(labelArb, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const vmArb = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?$/);
const macArb = fc
  .array(fc.integer({ min: 0, max: 255 }), { minLength: 3, maxLength: 3 })
  .map((b) => `52:54:00:${b.map((x) => x.toString(16).padStart(2, '0')).join(':')}`);
/** A subnet /16-/28 of 10.0.0.0/8, as its network address. */
const subnetArb = fc
  .tuple(fc.integer({ min: 0, max: 0xffffff }), fc.integer({ min: 16, max: 28 }))
  .map(([n, p]) => {
    const mask = (0xffffffff << (32 - p)) >>> 0;
    return `${formatIpv4(((0x0a000000 | n) & mask) >>> 0)}/${p}`;
  });

/** A valid nat network input with its optional fields, built from the subnet (gateway .1). */
const validNetworkArb: fc.Arbitrary<NetworkInput> = fc
  .record({
    name: nameArb,
    bridge: bridgeArb.filter((b) => !b.startsWith('-')),
    subnet: subnetArb,
    domain: fc.option(domainArb, { nil: undefined }),
    mtu: fc.option(fc.integer({ min: 68, max: 65535 }), { nil: undefined }),
    leaseTime: fc.option(fc.integer({ min: 0, max: 2 ** 31 }), { nil: undefined }),
    txt: fc.option(fc.tuple(labelArb, fc.stringMatching(/^[a-zA-Z0-9 =.:;_-]{0,40}$/)), { nil: undefined }),
    host: fc.option(fc.tuple(labelArb, macArb), { nil: undefined }),
    mode: fc.constantFrom('nat', 'routed', 'isolated'),
  })
  .map((r) => {
    const c = parseCidr(r.subnet);
    assert.ok(c);
    const input: NetworkInput = { name: r.name, mode: r.mode, bridge: r.bridge, subnet: r.subnet };
    if (r.domain !== undefined) input.domain = r.domain;
    if (r.mtu !== undefined) input.mtu = r.mtu;
    if (r.leaseTime !== undefined) input.leaseTime = r.leaseTime;
    if (r.txt !== undefined) input.dns = { txt: [{ name: r.txt[0], value: r.txt[1].trim() }] };
    if (r.host !== undefined)
      input.dhcpHosts = [{ name: r.host[0], mac: r.host[1], ip: formatIpv4(c.addr + 2) }];
    return input;
  });

function build(input: NetworkInput, others: NetworkDef[] = []): NetworkDef {
  return buildNetwork(input, { others });
}

const DNSMASQ_KEYS = new Set([
  'strict-order',
  'pid-file',
  'except-interface',
  'bind-dynamic',
  'interface',
  'port',
  'domain-needed',
  'local',
  'server',
  'srv-host',
  'txt-record',
  'domain',
  'expand-hosts',
  'no-resolv',
  'dhcp-range',
  'dhcp-no-override',
  'dhcp-authoritative',
  'dhcp-lease-max',
  'no-ping',
  'dhcp-option',
  'dhcp-leasefile',
  'dhcp-hostsfile',
  'addn-hosts',
]);
const PATHS = { pidFile: '/run/p', leaseFile: '/l', dhcpHostsFile: '/h', hostsFile: '/a' };

/** A rendered config of an accepted definition: only known keys, one value per line, no comment tricks. */
function assertSafeRendering(def: NetworkDef): void {
  if (def.subnet === undefined) return;
  const lines = renderDnsmasqConf(def, PATHS).trimEnd().split('\n');
  for (const l of lines.slice(1)) {
    const key = /^([a-z-]+)(=|$)/.exec(l)?.[1];
    assert.ok(key !== undefined && DNSMASQ_KEYS.has(key), `unexpected dnsmasq line ${JSON.stringify(l)}`);
    assert.ok(!/\s#/.test(l), `a comment in ${JSON.stringify(l)}`);
  }
  assert.equal(lines.filter((l) => l.startsWith('interface=')).length, 1);
  for (const l of renderNetworkDhcpHosts(def).split('\n').filter(Boolean))
    assert.match(l, /^[0-9a-f:]{17},[0-9.]+(,[A-Za-z0-9_.-]+)?(,\w+)?$|^[A-Za-z0-9_.-]+,[0-9.]+(,\w+)?$/);
  for (const l of renderNetworkHosts(def).split('\n').filter(Boolean))
    assert.match(l, /^[0-9.]+(\t[A-Za-z0-9_.-]+)+$/);
}

// ---- hostile structures ----

const dhcpHostArb = shaped({ mac: macArb, name: labelArb, ip: fc.constant('10.1.0.9'), leaseTime: fc.nat() });
const dnsArb = shaped({
  enable: fc.boolean(),
  forwardPlainNames: fc.boolean(),
  hosts: fc.array(
    shaped({ ip: fc.constant('10.1.0.7'), hostnames: fc.array(hostileString(), { maxLength: 2 }) }),
    {
      maxLength: 2,
    },
  ),
  forwarders: fc.array(shaped({ addr: fc.constant('1.1.1.1'), domain: hostileString() }), { maxLength: 2 }),
  srv: fc.array(
    shaped({
      service: hostileString(),
      protocol: fc.constantFrom('tcp', 'udp'),
      domain: hostileString(),
      target: hostileString(),
      port: fc.integer(),
      priority: fc.integer(),
      weight: fc.integer(),
    }),
    { maxLength: 2 },
  ),
  txt: fc.array(shaped({ name: hostileString(), value: hostileString() }), { maxLength: 2 }),
});
const networkEntryArb = shaped({
  mode: fc.constantFrom('nat', 'isolated', 'routed', 'bridge', 'open'),
  bridge: hostileString(),
  mac: fc.oneof(macArb, hostileString()),
  subnet: fc.oneof(subnetArb, hostileString()),
  uplink: hostileString(),
  gateway: hostileString(),
  dhcp: fc.oneof(fc.constant(false), shaped({ start: hostileString(), end: hostileString() })),
  domain: fc.oneof(domainArb, hostileString()),
  autostart: fc.boolean(),
  uuid: fc.oneof(fc.uuid(), hostileString()),
  mtu: fc.integer(),
  stp: fc.boolean(),
  forwardDelay: fc.integer(),
  leaseTime: fc.integer(),
  dhcpHosts: fc.array(dhcpHostArb, { maxLength: 2 }),
  dns: dnsArb,
  forwardDev: hostileString(),
});
const forwardEntryArb = shaped({
  network: fc.oneof(nameArb, hostileString()),
  proto: fc.constantFrom('tcp', 'udp'),
  port: fc.oneof(fc.integer(), hostileString()),
  to: hostileString(),
  hostIp: hostileString(),
  description: hostileString(),
});
const fileArb = shaped({
  version: fc.constant(1),
  networks: fc.dictionary(fc.oneof(nameArb, hostileString()), networkEntryArb, { maxKeys: 2 }),
  forwards: fc.array(forwardEntryArb, { maxLength: 2 }),
});

/** Text that is YAML-ish: structure characters, anchors, aliases, tags and hostile words. */
const yamlishArb = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'networks:',
        '\n',
        '  ',
        '- ',
        ': ',
        '&a ',
        '*a',
        '!!set ',
        '!!binary ',
        '!!omap',
        '? ',
        '{',
        '}',
        '[',
        ']',
        ',',
        '"',
        "'",
        '|',
        '>',
        '#',
        '---',
        '...',
        '%YAML 1.1',
        '__proto__',
        '<<: *a',
        'mode: nat',
        'subnet: 10.0.0.0/24',
        '\t',
        '\0',
        '\uFEFF',
        '@',
        '`',
      ),
      hostileString(),
    ),
    { maxLength: 30 },
  )
  .map((p) => p.join(''));

// ---- XML ----

function attrText(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;');
}
const xmlAttrArb = fc.oneof(hostileString(), subnetArb, macArb, fc.constantFrom('255.255.255.0', '10.0.0.1'));
interface XEl {
  tag: string;
  attrs: Array<[string, string]>;
  text: string;
  kids: XEl[];
}
const TAGS = [
  'name',
  'uuid',
  'forward',
  'bridge',
  'mac',
  'ip',
  'dhcp',
  'range',
  'host',
  'dns',
  'txt',
  'srv',
  'forwarder',
  'domain',
  'mtu',
  'interface',
  'nat',
  'port',
  'address',
  'metadata',
  'title',
  'description',
  'route',
];
const ATTRS = [
  'name',
  'mode',
  'dev',
  'address',
  'netmask',
  'prefix',
  'start',
  'end',
  'mac',
  'ip',
  'stp',
  'delay',
  'size',
  'family',
  'value',
  'service',
  'protocol',
  'target',
  'port',
  'enable',
  'localOnly',
  'forwardPlainNames',
  'type',
];
function xelArb(depth: number): fc.Arbitrary<XEl> {
  return fc.record({
    tag: fc.constantFrom(...TAGS),
    attrs: fc.array(fc.tuple(fc.constantFrom(...ATTRS), xmlAttrArb), { maxLength: 3 }),
    text: fc.oneof(fc.constant(''), hostileString()),
    kids: depth > 0 ? fc.array(xelArb(depth - 1), { maxLength: 3 }) : fc.constant([]),
  });
}
function xmlOf(e: XEl): string {
  const a = e.attrs.map(([k, v]) => ` ${k}='${attrText(v)}'`).join('');
  const body = attrText(e.text) + e.kids.map(xmlOf).join('');
  return `<${e.tag}${a}>${body}</${e.tag}>`;
}

// ---- the properties ----

const impl: Record<(typeof MODEL_PROPERTY_CASES)[number], () => void> = {
  'YAML definitions: any text parses or is refused with a one-line KvmnetError': () => {
    fcAssert(
      fc.property(fc.oneof(yamlishArb, fc.string({ maxLength: 200 })), (text) => {
        outcome(() => parseDefinitionsFile(text, 'f.yaml'));
      }),
      400,
    );
  },
  'YAML definitions: schema-shaped files with hostile values parse or are refused, and what parses builds or is refused':
    () => {
      fcAssert(
        fc.property(fileArb, (file) => {
          const text = stringify(file);
          const r = outcome(() => parseDefinitionsFile(text, 'f.yaml'));
          if (!r.ok) return;
          const defs: NetworkDef[] = [];
          for (const n of r.value.networks) {
            const b = outcome(() => build({ ...n, bridge: n.bridge ?? 'virbr0' }, defs));
            if (b.ok) {
              assertSafeRendering(b.value);
              defs.push(b.value);
            }
          }
        }),
        300,
      );
    },
  'YAML definitions: valid networks and forwards survive export -> parse -> build unchanged': () => {
    fcAssert(
      fc.property(validNetworkArb, fc.integer({ min: 1, max: 65000 }), vmArb, (input, port, vm) => {
        const def = build(input);
        const fwd: ForwardDef = {
          network: def.name,
          proto: 'tcp',
          port,
          portEnd: port,
          target: vm,
          targetPort: 80,
          description: 'x',
        };
        const back = parseDefinitionsFile(renderDefinitions([def], [fwd]), 'export.yaml');
        assert.equal(back.networks.length, 1);
        assert.deepEqual(build(back.networks[0] as NetworkInput), def);
        assert.deepEqual(back.forwards, [
          { network: def.name, proto: 'tcp', ports: String(port), target: `${vm}:80`, description: 'x' },
        ]);
      }),
      200,
    );
  },
  'network XML: any text imports or is refused with a one-line KvmnetError': () => {
    const xmlish = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            '<network>',
            '</network>',
            '<name>',
            '</name>',
            '<!DOCTYPE n [<!ENTITY a "b">]>',
            '&a;',
            '&amp;',
            '<![CDATA[',
            ']]>',
            '<?xml version="1.0"?>',
            '<!--',
            '-->',
            "<ip address='10.0.0.1' prefix='24'/>",
            '<__proto__/>',
            '<constructor/>',
            "<bridge name='",
            "'/>",
            '<',
            '>',
            '&#0;',
            '&#x10FFFF;',
          ),
          hostileString(),
        ),
        { maxLength: 25 },
      )
      .map((p) => p.join(''));
    fcAssert(
      fc.property(fc.oneof(xmlish, fc.string({ maxLength: 200 })), (text) => {
        outcome(() => importNetworkXml(text));
      }),
      400,
    );
  },
  'network XML: libvirt-shaped documents with hostile names and attributes import or are refused': () => {
    fcAssert(
      fc.property(fc.array(xelArb(2), { maxLength: 6 }), (kids) => {
        const xml = xmlOf({ tag: 'network', attrs: [], text: '', kids });
        const r = outcome(() => importNetworkXml(xml));
        if (!r.ok) return;
        const b = outcome(() => build({ ...r.value.input, bridge: r.value.input.bridge ?? 'virbr0' }));
        if (b.ok) assertSafeRendering(b.value);
      }),
      300,
    );
  },
  'network XML: valid networks survive dumpxml -> import -> build unchanged': () => {
    fcAssert(
      fc.property(validNetworkArb, (input) => {
        const def = build(input);
        const { input: back } = importNetworkXml(renderNetworkXml(def));
        assert.deepEqual(build({ ...back, autostart: def.autostart }), def);
      }),
      200,
    );
  },
  'domain XML: any <interface> list parses or is refused, and every tap name kept is a plain interface name':
    () => {
      const ifaceArb = fc
        .record({
          type: fc.constantFrom('bridge', 'network', 'user', 'direct'),
          mac: fc.oneof(macArb, hostileString()),
          bridge: fc.oneof(bridgeArb, hostileString()),
          dev: fc.oneof(fc.constantFrom('vnet0', 'vnet12'), hostileString()),
          model: fc.oneof(fc.constantFrom('virtio', 'e1000'), hostileString()),
        })
        .map(
          (i) =>
            `<interface type='${attrText(i.type)}'><mac address='${attrText(i.mac)}'/><source bridge='${attrText(i.bridge)}'/>` +
            `<target dev='${attrText(i.dev)}'/><model type='${attrText(i.model)}'/></interface>`,
        );
      fcAssert(
        fc.property(
          hostileString(),
          fc.array(ifaceArb, { maxLength: 4 }),
          fc.boolean(),
          (name, ifs, doctype) => {
            const xml =
              (doctype ? '<!DOCTYPE d [<!ENTITY x "y">]>' : '') +
              `<domain type='kvm'><name>${attrText(name)}</name><devices>${ifs.join('')}</devices></domain>`;
            const r = outcome(() => parseDomainXml(xml));
            if (doctype) assert.equal(r.ok, false, 'a DOCTYPE is refused');
            if (!r.ok) return;
            for (const i of r.value.interfaces) {
              if (i.dev !== undefined) assert.match(i.dev, /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/);
              if (i.model !== undefined) assert.match(i.model, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/);
              assert.equal(normalizeMac(i.mac), i.mac);
            }
          },
        ),
        300,
      );
    },
  'IPv4 and CIDR: parsers never throw, valid values round-trip, parseSubnet refuses with KvmnetError only':
    () => {
      fcAssert(
        fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (n, p) => {
          assert.equal(parseIpv4(formatIpv4(n)), n);
          const c = parseCidr(`${formatIpv4(n)}/${p}`);
          assert.ok(c);
          assert.equal(formatCidr(c), `${formatIpv4(n)}/${p}`);
        }),
        500,
      );
      fcAssert(
        fc.property(fc.oneof(hostileString(), fc.stringMatching(/^[0-9./ -]{0,20}$/)), (text) => {
          const ip = parseIpv4(text);
          if (ip !== undefined) assert.equal(formatIpv4(ip), text);
          const c = parseCidr(text);
          if (c !== undefined) assert.equal(formatCidr(c), text);
          const s = outcome(() => parseSubnet('subnet', text));
          if (s.ok) assert.equal(formatCidr(s.value), text);
        }),
        500,
      );
    },
  'MAC: normalizeMac never throws and round-trips, buildNetwork refuses bad MACs with KvmnetError only':
    () => {
      fcAssert(
        fc.property(fc.oneof(macArb, hostileString(), fc.stringMatching(/^[0-9a-fA-F:-]{0,20}$/)), (text) => {
          const m = normalizeMac(text);
          if (m !== undefined) {
            assert.match(m, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
            assert.equal(normalizeMac(m), m);
          }
          const r = outcome(() => build({ name: 'n', bridge: 'br0', subnet: '10.0.0.0/24', mac: text }));
          if (r.ok) assert.equal(r.value.mac, m);
        }),
        400,
      );
    },
  'port ranges and forward targets: parsePortRange round-trips valid ranges, buildForward refuses with KvmnetError only':
    () => {
      const net = build({ name: 'lab', bridge: 'virbr1', subnet: '10.1.0.0/24' });
      const port: PortDef = {
        name: 'vnet0',
        network: 'lab',
        vm: 'kvm1',
        index: 0,
        mac: '52:54:00:00:00:01',
        ip: '10.1.0.10',
        model: 'virtio-net-pci',
        link: 'up',
      };
      fcAssert(
        fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          assert.deepEqual(parsePortRange(lo === hi ? `${lo}` : `${lo}-${hi}`, 'p'), [lo, hi]);
        }),
        300,
      );
      fcAssert(
        fc.property(
          fc.oneof(fc.stringMatching(/^[0-9-]{0,12}$/), hostileString()),
          fc.oneof(fc.constantFrom('kvm1:80', '10.1.0.20:53', 'kvm1'), hostileString()),
          fc.oneof(fc.constant(undefined), hostileString()),
          fc.oneof(fc.constant(undefined), hostileString()),
          fc.constantFrom('tcp', 'udp', 'sctp', ''),
          (ports, target, hostIp, description, proto) => {
            outcome(() => parsePortRange(ports, 'p'));
            const t = parseTarget(target);
            assert.equal(t.ports === undefined ? t.target : `${t.target}:${t.ports}`, target);
            const r = outcome(() =>
              buildForward(
                {
                  network: 'lab',
                  proto,
                  ports,
                  target,
                  ...(hostIp === undefined ? {} : { hostIp }),
                  ...(description === undefined ? {} : { description }),
                },
                { net, allowed: true, ports: [port], forwards: [] },
              ),
            );
            if (r.ok && r.value.description !== undefined)
              assert.match(r.value.description, /^[\x20-\x7e]{0,64}$/);
          },
        ),
        400,
      );
    },
  'network inputs: buildNetwork accepts or refuses with KvmnetError, and a dnsmasq config of what it accepts has only known keys':
    () => {
      fcAssert(
        fc.property(networkEntryArb, fc.oneof(nameArb, hostileString()), (entry, name) => {
          // What reaches buildNetwork has passed the schema (the file's, or the API's).
          const parsed = networkFileSchema.safeParse(entry);
          if (!parsed.success) return;
          const r = outcome(() =>
            build({ ...networkInputOf(name, parsed.data), bridge: String(entry.bridge) }),
          );
          if (r.ok) assertSafeRendering(r.value);
        }),
        400,
      );
    },
  'port inputs: buildPort accepts or refuses with KvmnetError, and the VM name it keeps is a DNS label':
    () => {
      const net = build({ name: 'lab', bridge: 'virbr1', subnet: '10.1.0.0/24' });
      fcAssert(
        fc.property(
          fc.oneof(vmArb, hostileString()),
          fc.option(fc.oneof(macArb, hostileString()), { nil: undefined }),
          fc.option(fc.oneof(fc.constant('10.1.0.50'), hostileString()), { nil: undefined }),
          fc.option(fc.oneof(fc.constant('e1000'), hostileString()), { nil: undefined }),
          (vm, mac, ip, model) => {
            const r = outcome(() =>
              buildPort(
                {
                  network: 'lab',
                  vm,
                  ...(mac === undefined ? {} : { mac }),
                  ...(ip === undefined ? {} : { ip }),
                  ...(model === undefined ? {} : { model }),
                },
                { net, ports: [], links: new Set() },
              ),
            );
            if (r.ok) {
              assert.match(r.value.vm, VM_RE);
              assert.match(r.value.model, /^[a-z0-9][a-z0-9_-]{0,31}$/);
            }
          },
        ),
        400,
      );
    },
};

describe('property tests of the input parsers (MODEL_PROPERTY_CASES)', () => {
  for (const name of MODEL_PROPERTY_CASES) {
    test(name, () => {
      const f = impl[name];
      assert.ok(f, `no implementation for "${name}"`);
      f();
    });
  }
});

describe('regressions found by the property tests', () => {
  test('YAML aliases that expand exponentially are refused, not expanded', () => {
    const text = ['a: &a [x, x, x, x, x, x, x, x, x]']
      .concat(
        ['b', 'c', 'd', 'e', 'f'].map(
          (k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcde'[i]}`).join(', ')}]`,
        ),
      )
      .join('\n');
    const r = outcome(() => parseDefinitionsFile(text, 'f.yaml'));
    assert.equal(r.ok, false);
  });
  test('a network named __proto__ is refused, not silently dropped', () => {
    const r = outcome(() => parseDefinitionsFile('networks:\n  __proto__:\n    mode: nat\n', 'f.yaml'));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.message, 'f.yaml:2: the key __proto__ is not allowed');
  });
  test('a DOCTYPE with entities is refused by the network XML importer', () => {
    const r = outcome(() =>
      importNetworkXml('<!DOCTYPE n [<!ENTITY a "aaaa">]><network><name>&a;</name></network>'),
    );
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.message, '/: a DOCTYPE or entity declaration is not allowed');
  });
  test('an element named __proto__ is an invalid-xml refusal, not a crash', () => {
    const r = outcome(() => importNetworkXml('<network><__proto__/><name>x</name></network>'));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'invalid-xml');
  });
  test("a domain's <target dev> with a line break is not kept (it would reach ip -batch)", () => {
    const d = parseDomainXml(
      "<domain><name>x</name><devices><interface type='bridge'><mac address='52:54:00:00:00:01'/>" +
        "<source bridge='virbr0'/><target dev='a&#10;link del eth0'/></interface></devices></domain>",
    );
    assert.deepEqual(d.interfaces, [{ type: 'bridge', mac: '52:54:00:00:00:01', bridge: 'virbr0' }]);
  });
  test('the libvirt hook passes "--" so a domain named "-x" is not read as an option', () => {
    const script = renderHookScript({ node: '/n', bin: '/b', stateDir: '/s', runDir: '/r' });
    assert.ok(script.includes('libvirt hook-event -- "$1" "$2" "$3"'), script);
  });
  test('a name with a line break gives a one-line message', () => {
    const r = outcome(() => build({ name: 'a\nb', bridge: 'br0', subnet: '10.0.0.0/24' }));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.message, 'network name "a\\x0ab" is not valid');
  });
  test('a TXT value over 255 characters or with " #" is refused', () => {
    for (const value of ['a'.repeat(256), 'x #y']) {
      const r = outcome(() =>
        build({ name: 'n', bridge: 'br0', subnet: '10.0.0.0/24', dns: { txt: [{ name: 't', value }] } }),
      );
      assert.equal(r.ok, false, value);
    }
  });
  test('hostile values parse as YAML values too', () => {
    fcAssert(
      fc.property(hostileValue(), (v) => {
        outcome(() => parseDefinitionsFile(stringify({ networks: { x: v } }), 'f.yaml'));
      }),
      100,
    );
  });
});
