// libvirt network XML in and out: `kvmnet net define FILE.xml` and `kvmnet net dumpxml NAME`.
// Pure: text in, NetworkInput out (and NetworkDef in, XML text out). Every element and attribute of
// the input is either mapped or refused with its XPath and a hint; nothing is dropped silently.
// Not here: domain <interface> snippets, libvirt hooks, talking to libvirtd.
import { parseXmlSafely, refuseDoctype } from './xml.js';
import { XMLBuilder, XMLValidator } from 'fast-xml-parser';
import { inputError, KvmnetError } from './errors.js';
import { formatIpv4, networkOf, parseIpv4 } from './ipv4.js';
import {
  buildNetwork,
  type DhcpHost,
  type DnsConfig,
  type DnsForwarder,
  type DnsHost,
  type DnsSrv,
  type DnsTxt,
  type NetworkDef,
  type NetworkInput,
} from './network.js';

/** The XML namespace of kvmnet's own <metadata> element (uplink of a bridged network, autostart). */
export const KVMNET_XMLNS = 'https://github.com/kvmnet/kvmnet/xmlns/network/1';

/** Does this text look like libvirt network XML (after an XML declaration, comments and blanks)? */
export function isNetworkXml(text: string): boolean {
  let t = text.replace(/^\uFEFF/, '');
  for (;;) {
    const before = t;
    t = t.replace(/^\s+/, '');
    t = t.replace(/^<\?xml[\s\S]*?\?>/, '');
    t = t.replace(/^<!--[\s\S]*?-->/, '');
    if (t === before) break;
  }
  return /^<network[\s/>]/.test(t);
}

/** Hints for things kvmnet refuses, by element or attribute name (the last XPath step). */
const HINTS: Record<string, string> = {
  '@dev':
    'kvmnet restricts the outgoing interface of a nat or route network only (<forward dev>); remove dev=',
  interface: 'kvmnet forwards (NAT or routed) out of any host interface; remove the <interface> list',
  nat: "kvmnet masquerades to the outgoing interface's address, ports 1024-65535; remove <nat>",
  tftp: 'kvmnet does not serve TFTP; run a TFTP server on the host and remove <tftp>',
  bootp: 'kvmnet does not send a network boot file; remove <bootp>',
  '@localPtr': 'kvmnet does not make dnsmasq authoritative for the reverse zone; remove localPtr',
  route: 'kvmnet does not add static routes through a guest; remove <route> and add the route by hand',
  portgroup: 'kvmnet has no port groups; remove <portgroup>',
  bandwidth: 'kvmnet does not shape traffic; remove <bandwidth>',
  virtualport: 'kvmnet bridges are Linux bridges (no Open vSwitch); remove <virtualport>',
  vlan: 'kvmnet does not tag VLANs; remove <vlan>',
  port: 'kvmnet does not isolate ports; remove <port>',
  'dnsmasq:options': 'kvmnet does not pass raw dnsmasq options; remove <dnsmasq:options>',
  '@ipv6': 'kvmnet is IPv4-only for now; remove ipv6=',
  '@macTableManager': 'kvmnet bridges learn MACs (kernel default); remove macTableManager',
  '@zone': 'kvmnet does not use firewalld zones (it has its own nftables table); remove zone',
  '@id': 'DHCPv6 client ids are IPv6: kvmnet is IPv4-only for now; remove the host',
  '@port': 'kvmnet forwards DNS to port 53 only; remove port=',
  '@register': 'kvmnet does not register DHCP names with the host resolver; remove register',
  '@trustGuestRxFilters': 'kvmnet has no guest rx filters; remove trustGuestRxFilters',
};

const GENERIC_HINT = 'kvmnet cannot honour it; remove it to import the rest (see docs/libvirt.md)';

type Node = Record<string, unknown>;

/** Attribute values and text are strings (parseAttributeValue/parseTagValue are off). */
function scalar(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

function refuse(path: string, what: string, hint?: string): KvmnetError {
  const step = path.slice(path.lastIndexOf('/') + 1).replace(/\[\d+\]$/, '');
  return inputError('libvirt-unsupported', `${path}: ${what}`, hint ?? HINTS[step] ?? GENERIC_HINT);
}

/** One element of the parsed XML: hands out its attributes and children and remembers which it gave. */
class El {
  private readonly used = new Set<string>();

  constructor(
    readonly path: string,
    readonly node: Node,
  ) {}

  attr(name: string): string | undefined {
    this.used.add(`@${name}`);
    const v = this.node[`@${name}`];
    return v === undefined ? undefined : scalar(v);
  }

  attrPath(name: string): string {
    return `${this.path}/@${name}`;
  }

  /** A yes/no attribute. */
  yesNo(name: string): boolean | undefined {
    const v = this.attr(name);
    if (v === undefined) return undefined;
    if (v === 'yes' || v === 'on') return true;
    if (v === 'no' || v === 'off') return false;
    throw refuse(this.attrPath(name), `"${v}" is not yes or no`, 'write yes or no');
  }

  int(name: string): number | undefined {
    const v = this.attr(name);
    if (v === undefined) return undefined;
    if (!/^\d{1,10}$/.test(v.trim()))
      throw refuse(this.attrPath(name), `"${v}" is not a whole number`, 'write a number');
    return Number(v.trim());
  }

  children(name: string): El[] {
    this.used.add(name);
    const v = this.node[name];
    const list = Array.isArray(v) ? v : v === undefined ? [] : [v];
    return list.map(
      (n, i) =>
        new El(
          `${this.path}/${name}${list.length > 1 ? `[${i + 1}]` : ''}`,
          typeof n === 'object' && n ? (n as Node) : {},
        ),
    );
  }

  /** The one child of this name; a second one is refused. */
  child(name: string, hint?: string): El | undefined {
    const c = this.children(name);
    if (c[1])
      throw refuse(c[1].path, `a second <${name}> is not supported`, hint ?? HINTS[name] ?? GENERIC_HINT);
    return c[0];
  }

  text(): string {
    this.used.add('#text');
    const v = this.node['#text'];
    return v === undefined ? '' : scalar(v).trim();
  }

  /** Refuses whatever was not handed out (namespace declarations aside). */
  done(): void {
    for (const k of Object.keys(this.node)) {
      if (this.used.has(k) || k.startsWith('@xmlns')) continue;
      if (k === '#text') {
        if (scalar(this.node[k]).trim() !== '') throw refuse(this.path, 'unexpected text', 'remove the text');
        continue;
      }
      if (k.startsWith('@')) throw refuse(`${this.path}/${k}`, `attribute ${k.slice(1)} is not supported`);
      const first = this.children(k)[0];
      throw refuse(first?.path ?? `${this.path}/${k}`, `<${k}> is not supported`);
    }
  }
}

/** The XPath of each definition field, for errors the model raises on a field. */
type FieldPaths = Map<string, string>;

export interface XmlImport {
  input: NetworkInput;
  /** What was accepted but not kept (e.g. other applications' <metadata>). */
  notes: string[];
}

function prefixOf(netmask: string, path: string): number {
  const m = parseIpv4(netmask);
  if (m === undefined)
    throw refuse(path, `netmask "${netmask}" is not an IPv4 netmask`, 'e.g. 255.255.255.0');
  const prefix = 32 - Math.log2(((~m >>> 0) + 1) >>> 0 || 2 ** 32);
  if (!Number.isInteger(prefix))
    throw refuse(path, `netmask ${netmask} is not contiguous`, 'e.g. 255.255.255.0');
  return prefix;
}

const LEASE_UNITS: Record<string, number> = { seconds: 1, minutes: 60, hours: 3600 };

function leaseOf(parent: El): number | undefined {
  const l = parent.child('lease');
  if (!l) return undefined;
  const expiry = l.int('expiry');
  const unit = l.attr('unit') ?? 'minutes';
  l.done();
  if (expiry === undefined)
    throw refuse(l.path, '<lease> has no expiry', "e.g. <lease expiry='1' unit='hours'/>");
  const mult = LEASE_UNITS[unit];
  if (mult === undefined)
    throw refuse(l.attrPath('unit'), `unit "${unit}" is not seconds, minutes or hours`, 'use one of those');
  return expiry * mult;
}

/**
 * Maps libvirt network XML to a kvmnet network input, refusing (with its XPath) whatever kvmnet
 * cannot honour, then validates it on its own (not against the host or other networks; `define`
 * does that) so that model errors name their XPath too.
 */
export function importNetworkXml(text: string): XmlImport {
  refuseDoctype(text, '/', 'remove the <!DOCTYPE ...> (libvirt network XML has none)');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw inputError(
      'invalid-xml',
      `/: not well-formed XML (line ${valid.err.line}, column ${valid.err.col}): ${valid.err.msg}`,
      'fix the XML syntax',
    );
  }
  const doc = parseXmlSafely(text, '/', 'fix the XML');
  const roots = Object.keys(doc).filter((k) => !k.startsWith('#') && !k.startsWith('?'));
  if (roots.length !== 1 || roots[0] !== 'network') {
    throw inputError(
      'invalid-xml',
      `/${roots[0] ?? ''}: not a libvirt network definition`,
      'the root element must be <network>',
    );
  }
  const tops = (doc.network as Node[] | undefined) ?? [];
  const net = new El('/network', tops[0] ?? {});
  const paths: FieldPaths = new Map();
  const notes: string[] = [];

  const nameEl = net.child('name');
  if (!nameEl) throw refuse('/network', 'no <name>', 'add <name>NAME</name>');
  const input: NetworkInput = { name: nameEl.text() };
  paths.set('name', nameEl.path);
  nameEl.done();

  const uuidEl = net.child('uuid');
  if (uuidEl) {
    input.uuid = uuidEl.text();
    paths.set('uuid', uuidEl.path);
    uuidEl.done();
  }

  // Descriptions and other applications' metadata configure nothing: noted, not kept.
  for (const tag of ['title', 'description']) {
    const e = net.child(tag);
    if (e) notes.push(`${e.path}: not kept (kvmnet has no ${tag})`);
  }
  let uplink: string | undefined;
  const meta = net.child('metadata');
  if (meta) {
    const mine = readKvmnetMetadata(meta, notes);
    if (mine.autostart !== undefined) input.autostart = mine.autostart;
    if (mine.peers !== undefined) input.peers = mine.peers;
    if (mine.offload === false) input.offload = false;
    uplink = mine.uplink;
  }

  // Mode.
  const fwd = net.child('forward');
  let mode: string;
  if (!fwd) mode = 'isolated';
  else {
    const m = fwd.attr('mode') ?? 'nat';
    paths.set('mode', fwd.attrPath('mode'));
    let dev = fwd.attr('dev');
    switch (m) {
      case 'nat':
        mode = 'nat';
        break;
      case 'route':
        mode = 'routed';
        break;
      case 'bridge':
        // Without kvmnet's uplink metadata: a bridge the host already has (checked when defined).
        mode = 'bridge';
        break;
      case 'open':
        mode = 'open';
        break;
      default:
        throw refuse(
          fwd.attrPath('mode'),
          `mode '${m}' (macvtap or SR-IOV) is not supported`,
          'kvmnet networks are Linux bridges: nat, route, isolated (no <forward>) or bridge with an uplink',
        );
    }
    // libvirt's parsed form repeats dev= as one <interface dev> (networkxml2xmlout): that one is
    // taken; another or a second interface is refused (an interface pool is for macvtap modes).
    let devPath = fwd.attrPath('dev');
    if (mode === 'nat' || mode === 'routed') {
      const ifs = fwd.children('interface');
      if (ifs[1])
        throw refuse(
          ifs[1].path,
          'a second forward <interface> is not supported',
          'kvmnet restricts a nat or route network to one outgoing interface; keep one',
        );
      const i0 = ifs[0];
      if (i0) {
        const d = i0.attr('dev');
        if (d === undefined) throw refuse(i0.path, '<interface> has no dev', "e.g. <interface dev='eth1'/>");
        if (dev !== undefined && d !== dev)
          throw refuse(
            i0.attrPath('dev'),
            `interface ${d} is not the forward dev ${dev}`,
            'kvmnet restricts a nat or route network to one outgoing interface; make them equal',
          );
        if (dev === undefined) {
          dev = d;
          devPath = i0.attrPath('dev');
        }
        i0.done();
      }
    }
    if (dev !== undefined) {
      if (mode !== 'nat' && mode !== 'routed')
        throw refuse(
          fwd.attrPath('dev'),
          `dev= with mode '${m}' is not supported`,
          'kvmnet restricts the outgoing interface of nat and route networks only; remove dev=',
        );
      input.forwardDev = dev;
      paths.set('forwardDev', devPath);
    }
    fwd.done();
  }
  input.mode = mode;
  if (uplink !== undefined) {
    if (mode !== 'bridge')
      throw refuse(
        '/network/metadata',
        'a kvmnet uplink is only for forward mode bridge',
        'remove the uplink',
      );
    input.uplink = uplink;
  }

  const br = net.child('bridge');
  if (br) {
    const n = br.attr('name');
    if (n !== undefined) {
      input.bridge = n;
      paths.set('bridge', br.attrPath('name'));
    }
    const stp = br.yesNo('stp');
    const delay = br.int('delay');
    if (mode !== 'bridge') {
      if (stp !== undefined) input.stp = stp;
      if (delay !== undefined) input.forwardDelay = delay;
    } else if (stp === true || (delay ?? 0) !== 0) {
      throw refuse(
        br.path,
        'STP and forward delay on a bridged network are not supported',
        'remove stp and delay',
      );
    }
    paths.set('stp', br.attrPath('stp'));
    paths.set('forwardDelay', br.attrPath('delay'));
    br.done();
  }

  const macEl = net.child('mac');
  if (macEl) {
    const a = macEl.attr('address');
    if (a !== undefined) input.mac = a;
    paths.set('mac', macEl.attrPath('address'));
    macEl.done();
  }

  const mtuEl = net.child('mtu');
  if (mtuEl) {
    const s = mtuEl.int('size');
    if (s === undefined) throw refuse(mtuEl.path, '<mtu> has no size', "e.g. <mtu size='9000'/>");
    input.mtu = s;
    paths.set('mtu', mtuEl.attrPath('size'));
    mtuEl.done();
  }

  const dom = net.child('domain');
  if (dom) {
    const n = dom.attr('name');
    if (n === undefined) throw refuse(dom.path, '<domain> has no name', "e.g. <domain name='lab'/>");
    if (dom.yesNo('localOnly') === false) {
      throw refuse(
        dom.attrPath('localOnly'),
        "localOnly='no' (forward the domain's unknown names upstream) is not supported",
        'kvmnet always answers its domain locally; remove localOnly',
      );
    }
    input.domain = n;
    paths.set('domain', dom.attrPath('name'));
    dom.done();
  }

  const dnsEl = net.child('dns');
  if (dnsEl) {
    const dns = importDns(dnsEl, paths);
    if (Object.keys(dns).length > 0) input.dns = dns;
  }

  // Addresses: one IPv4 <ip>.
  let ipSeen = false;
  for (const ip of net.children('ip')) {
    const family = ip.attr('family');
    const address = ip.attr('address');
    if (family === 'ipv6' || address?.includes(':')) {
      throw refuse(
        ip.path,
        'IPv6 addresses are not supported',
        "kvmnet is IPv4-only for now; remove the <ip family='ipv6'> element",
      );
    }
    if (family !== undefined && family !== 'ipv4')
      throw refuse(ip.attrPath('family'), `family "${family}" is not known`, 'use ipv4');
    if (ipSeen)
      throw refuse(
        ip.path,
        'a second IPv4 address is not supported',
        'kvmnet networks have one subnet; remove this <ip>',
      );
    ipSeen = true;
    importIp(ip, input, paths);
  }
  if (!ipSeen && mode !== 'bridge') {
    throw refuse(
      '/network',
      `${fwd ? `a forward mode '${fwd.attr('mode') ?? 'nat'}'` : 'an isolated'} network without an IPv4 <ip> is not supported`,
      "kvmnet's nat, routed and isolated networks own an IPv4 subnet: add <ip address='…' prefix='…'/>",
    );
  }

  net.attr('connections'); // live XML only: how many guests use it, not configuration
  net.done();

  // Validate on its own, so that model errors name their XPath too.
  try {
    buildNetwork({ ...input, bridge: input.bridge ?? 'virbr0' }, { others: [] });
  } catch (e) {
    if (e instanceof KvmnetError && e.kind === 'input') {
      throw new KvmnetError(
        e.code,
        `${xpathOf(e, paths)}: ${e.message}`,
        e.hint === undefined ? {} : { hint: e.hint },
      );
    }
    throw e;
  }
  return { input, notes };
}

/** The error's field (or, by code, the field it is about) as an XPath of the input. */
function xpathOf(e: KvmnetError, paths: FieldPaths): string {
  const byCode: Record<string, string> = {
    'invalid-name': 'name',
    'invalid-bridge': 'bridge',
    'invalid-mac': 'mac',
    'invalid-subnet': 'subnet',
    'invalid-gateway': 'gateway',
    'invalid-dhcp-range': 'dhcp',
    'invalid-domain': 'domain',
  };
  let field = e.field ?? byCode[e.code];
  while (field !== undefined && field !== '') {
    const p = paths.get(field);
    if (p) return p;
    field = field.includes('.') ? field.slice(0, field.lastIndexOf('.')) : '';
  }
  return '/network';
}

function readKvmnetMetadata(
  meta: El,
  notes: string[],
): { autostart?: boolean; uplink?: string; peers?: string[]; offload?: boolean } {
  const node = meta.node;
  const out: { autostart?: boolean; uplink?: string; peers?: string[]; offload?: boolean } = {};
  for (const key of Object.keys(node)) {
    if (key.startsWith('@') || key === '#text') continue;
    for (const c of meta.children(key)) {
      const prefix = key.includes(':') ? key.slice(0, key.indexOf(':')) : '';
      const ns = c.attr(prefix ? `xmlns:${prefix}` : 'xmlns');
      if (ns === KVMNET_XMLNS && key.endsWith('network')) {
        const a = c.yesNo('autostart');
        if (a !== undefined) out.autostart = a;
        const u = c.attr('uplink');
        if (u !== undefined) out.uplink = u;
        // Peered routed networks (isolation exceptions), comma-separated names.
        const p = c.attr('peers');
        if (p !== undefined) out.peers = p.split(',').filter((x) => x !== '');
        // Flow offload of a nat network: offload='no' (--no-offload); absent or 'yes': on.
        const o = c.yesNo('offload');
        if (o !== undefined) out.offload = o;
        c.done();
      } else {
        notes.push(`${c.path}: another application's metadata, not kept`);
      }
    }
  }
  meta.done();
  return out;
}

function importIp(ip: El, input: NetworkInput, paths: FieldPaths): void {
  const address = ip.attr('address');
  if (address === undefined)
    throw refuse(ip.path, '<ip> has no address', "e.g. <ip address='192.168.122.1' prefix='24'/>");
  const addr = parseIpv4(address);
  if (addr === undefined)
    throw refuse(ip.attrPath('address'), `"${address}" is not an IPv4 address`, 'write it as a.b.c.d');
  const netmask = ip.attr('netmask');
  const prefixAttr = ip.int('prefix');
  if (netmask !== undefined && prefixAttr !== undefined)
    throw refuse(ip.path, 'both netmask and prefix are given', 'keep one of them');
  let prefix: number;
  if (netmask !== undefined) prefix = prefixOf(netmask, ip.attrPath('netmask'));
  else if (prefixAttr !== undefined) prefix = prefixAttr;
  else {
    // libvirt's default: the classful prefix of the address.
    const first = addr >>> 24;
    prefix = first < 128 ? 8 : first < 192 ? 16 : 24;
  }
  if (prefix > 32) throw refuse(ip.attrPath('prefix'), `prefix ${prefix} is out of range`, 'use 8-30');
  input.subnet = `${formatIpv4(networkOf({ addr, prefix }))}/${prefix}`;
  input.gateway = formatIpv4(addr);
  paths.set('subnet', ip.path);
  paths.set('gateway', ip.attrPath('address'));

  const dhcp = ip.child('dhcp');
  if (!dhcp) {
    input.dhcp = null;
  } else {
    const ranges = dhcp.children('range');
    if (ranges[1])
      throw refuse(
        ranges[1].path,
        'a second DHCP range is not supported',
        'kvmnet networks have one DHCP range; merge or remove ranges',
      );
    const range = ranges[0];
    if (range) {
      const start = range.attr('start');
      const end = range.attr('end');
      if (start === undefined || end === undefined)
        throw refuse(range.path, '<range> needs start and end', "e.g. <range start='…' end='…'/>");
      input.dhcp = { start, end };
      paths.set('dhcp', range.path);
      const lease = leaseOf(range);
      if (lease !== undefined) input.leaseTime = lease;
      paths.set('leaseTime', `${range.path}/lease`);
      range.done();
    } else {
      input.dhcp = null;
    }
    const hosts: DhcpHost[] = [];
    dhcp.children('host').forEach((h, i) => {
      const host: DhcpHost = { ip: h.attr('ip') ?? '' };
      const mac = h.attr('mac');
      const name = h.attr('name');
      if (mac !== undefined) host.mac = mac;
      if (name !== undefined) host.name = name;
      if (h.attr('ip') === undefined) throw refuse(h.path, '<host> has no ip', "give it ip='…'");
      const lease = leaseOf(h);
      if (lease !== undefined) host.leaseTime = lease;
      paths.set(`dhcpHosts.${i}`, h.path);
      for (const a of ['ip', 'mac', 'name']) paths.set(`dhcpHosts.${i}.${a}`, h.attrPath(a));
      paths.set(`dhcpHosts.${i}.leaseTime`, `${h.path}/lease`);
      h.done();
      hosts.push(host);
    });
    if (hosts.length > 0) {
      if (!range) {
        throw refuse(
          dhcp.path,
          'static DHCP hosts without a <range> are not supported',
          'kvmnet serves DHCP from a range: add a <range> (the hosts may lie outside it)',
        );
      }
      input.dhcpHosts = hosts;
    }
    dhcp.done();
  }
  ip.done();
}

function importDns(el: El, paths: FieldPaths): DnsConfig {
  const dns: DnsConfig = {};
  const enable = el.yesNo('enable');
  const plain = el.yesNo('forwardPlainNames');
  if (plain !== undefined) dns.forwardPlainNames = plain;
  paths.set('dns', el.path);
  paths.set('dns.enable', el.attrPath('enable'));
  const forwarders: DnsForwarder[] = el.children('forwarder').map((f, i) => {
    const r: DnsForwarder = {};
    const addr = f.attr('addr');
    const domain = f.attr('domain');
    if (addr !== undefined) r.addr = addr;
    if (domain !== undefined) r.domain = domain;
    paths.set(`dns.forwarders.${i}`, f.path);
    paths.set(`dns.forwarders.${i}.addr`, f.attrPath('addr'));
    paths.set(`dns.forwarders.${i}.domain`, f.attrPath('domain'));
    f.done();
    return r;
  });
  const hosts: DnsHost[] = el.children('host').map((h, i) => {
    const ip = h.attr('ip');
    if (ip === undefined) throw refuse(h.path, '<host> has no ip', "give it ip='…'");
    if (ip.includes(':'))
      throw refuse(
        h.attrPath('ip'),
        'IPv6 DNS hosts are not supported',
        'kvmnet is IPv4-only for now; remove this <host>',
      );
    const names = h.children('hostname').map((n, j) => {
      paths.set(`dns.hosts.${i}.hostnames.${j}`, n.path);
      const t = n.text();
      n.done();
      return t;
    });
    paths.set(`dns.hosts.${i}`, h.path);
    paths.set(`dns.hosts.${i}.ip`, h.attrPath('ip'));
    h.done();
    return { ip, hostnames: names };
  });
  const srv: DnsSrv[] = el.children('srv').map((s, i) => {
    const service = s.attr('service');
    const protocol = s.attr('protocol');
    if (service === undefined || protocol === undefined)
      throw refuse(s.path, '<srv> needs service and protocol', "e.g. <srv service='ldap' protocol='tcp' …/>");
    if (protocol !== 'tcp' && protocol !== 'udp')
      throw refuse(s.attrPath('protocol'), `protocol "${protocol}" is not tcp or udp`, 'use tcp or udp');
    const r: DnsSrv = { service, protocol };
    const domain = s.attr('domain');
    const target = s.attr('target');
    const port = s.int('port');
    const priority = s.int('priority');
    const weight = s.int('weight');
    if (domain !== undefined) r.domain = domain;
    if (target !== undefined) r.target = target;
    if (port !== undefined) r.port = port;
    if (priority !== undefined) r.priority = priority;
    if (weight !== undefined) r.weight = weight;
    paths.set(`dns.srv.${i}`, s.path);
    for (const a of ['service', 'protocol', 'domain', 'target', 'port', 'priority', 'weight'])
      paths.set(`dns.srv.${i}.${a}`, s.attrPath(a));
    s.done();
    return r;
  });
  const txt: DnsTxt[] = el.children('txt').map((t, i) => {
    const name = t.attr('name');
    const value = t.attr('value');
    if (name === undefined || value === undefined)
      throw refuse(t.path, '<txt> needs name and value', "e.g. <txt name='info' value='…'/>");
    paths.set(`dns.txt.${i}`, t.path);
    paths.set(`dns.txt.${i}.name`, t.attrPath('name'));
    paths.set(`dns.txt.${i}.value`, t.attrPath('value'));
    t.done();
    return { name, value };
  });
  if (
    enable === false &&
    (forwarders.length || hosts.length || srv.length || txt.length || plain !== undefined)
  ) {
    throw refuse(el.path, "enable='no' with DNS records or options", 'drop the records, or enable DNS');
  }
  if (enable === false) dns.enable = false;
  if (hosts.length) dns.hosts = hosts;
  if (forwarders.length) dns.forwarders = forwarders;
  if (srv.length) dns.srv = srv;
  if (txt.length) dns.txt = txt;
  el.done();
  return dns;
}

// ---- export ------------------------------------------------------------------------------------

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  format: true,
  indentBy: '  ',
  suppressEmptyNode: true,
});

function leaseXml(seconds: number | undefined): Node | undefined {
  if (seconds === undefined) return undefined;
  if (seconds === 0) return { '@expiry': '0' };
  if (seconds % 3600 === 0) return { '@expiry': String(seconds / 3600), '@unit': 'hours' };
  if (seconds % 60 === 0) return { '@expiry': String(seconds / 60), '@unit': 'minutes' };
  return { '@expiry': String(seconds), '@unit': 'seconds' };
}

function compact(n: Node): Node {
  return Object.fromEntries(Object.entries(n).filter(([, v]) => v !== undefined));
}

/** A network definition as libvirt network XML (what `virsh net-define` takes). */
export function renderNetworkXml(def: NetworkDef): string {
  const n: Node = { name: def.name };
  if (def.uuid !== undefined) n.uuid = def.uuid;
  const metadata = compact({
    '@xmlns:kvmnet': KVMNET_XMLNS,
    '@uplink': def.uplink,
    '@autostart': def.autostart ? 'yes' : undefined,
    '@peers': def.peers?.length ? def.peers.join(',') : undefined,
    '@offload': def.offload === false ? 'no' : undefined,
  });
  if (def.mode === 'bridge') {
    n.forward = { '@mode': 'bridge' };
    n.bridge = { '@name': def.bridge };
  } else {
    const dev = def.forwardDev === undefined ? {} : { '@dev': def.forwardDev };
    if (def.mode === 'nat') n.forward = { '@mode': 'nat', ...dev };
    else if (def.mode === 'routed') n.forward = { '@mode': 'route', ...dev };
    else if (def.mode === 'open') n.forward = { '@mode': 'open' };
    n.bridge = {
      '@name': def.bridge,
      '@stp': def.stp ? 'on' : 'off',
      '@delay': String(def.forwardDelay ?? 0),
    };
    n.mac = { '@address': def.mac };
    if (def.mtu !== undefined) n.mtu = { '@size': String(def.mtu) };
    if (def.domain !== undefined) n.domain = { '@name': def.domain, '@localOnly': 'yes' };
    const dns = def.dns;
    if (dns !== undefined) {
      n.dns = compact({
        '@enable': dns.enable === false ? 'no' : undefined,
        '@forwardPlainNames':
          dns.forwardPlainNames === undefined ? undefined : dns.forwardPlainNames ? 'yes' : 'no',
        forwarder: dns.forwarders?.map((f) => compact({ '@domain': f.domain, '@addr': f.addr })),
        host: dns.hosts?.map((h) => ({ '@ip': h.ip, hostname: h.hostnames })),
        srv: dns.srv?.map((s) =>
          compact({
            '@service': s.service,
            '@protocol': s.protocol,
            '@domain': s.domain,
            '@target': s.target,
            '@port': s.port?.toString(),
            '@priority': s.priority?.toString(),
            '@weight': s.weight?.toString(),
          }),
        ),
        txt: dns.txt?.map((t) => ({ '@name': t.name, '@value': t.value })),
      });
    }
    const prefix = Number(def.subnet?.split('/')[1] ?? 24);
    const ip: Node = { '@address': def.gateway, '@prefix': String(prefix) };
    if (def.dhcp) {
      ip.dhcp = compact({
        range: compact({ '@start': def.dhcp.start, '@end': def.dhcp.end, lease: leaseXml(def.leaseTime) }),
        host: def.dhcpHosts?.map((h) =>
          compact({ '@mac': h.mac, '@name': h.name, '@ip': h.ip, lease: leaseXml(h.leaseTime) }),
        ),
      });
    }
    n.ip = ip;
  }
  if (Object.keys(metadata).length > 1) n.metadata = { 'kvmnet:network': metadata };
  const xml: string = builder.build({ network: n });
  return xml;
}
