// Renders the files that make a bridged network survive a reboot, in the host's own network
// system's format: RHEL ifcfg, systemd-networkd, NetworkManager keyfiles, Debian ifupdown, netplan.
// The bridge takes the uplink's MAC, address(es) and routes, the uplink becomes its only port, STP
// off and forward delay 0. Pure: returns paths, texts and modes; writing them (and removing the
// uplink's old configuration) is the caller's business.
//
// Choices shared by the formats:
// - IPv4 only: kvmnet moves the uplink's IPv4 configuration. IPv6 is left to each system's default
//   (kernel or networkd/netplan SLAAC; NetworkManager's `method=auto`, what it gives a new wired
//   profile), so a host that had SLAAC on the uplink keeps it on the bridge.
// - DHCP: the bridge carries the uplink's MAC, and networkd / netplan / NetworkManager are told to
//   identify with it (`ClientIdentifier=mac`, `dhcp-identifier: mac`, `dhcp-client-id=mac`) instead
//   of a DUID, so the LAN's DHCP server hands out the same lease. dhclient (ifcfg, ifupdown) sends
//   no client identifier by default.
// - An MTU is set on the uplink too: a bridge's MTU cannot exceed its ports'.
import { createHash } from 'node:crypto';
import { Document, Scalar } from 'yaml';
import { inputError } from '../model/errors.js';
import { parseCidr, parseIpv4 } from '../model/ipv4.js';

import { PERSIST_FORMATS, type PersistFormat } from './persist-formats.js';
export { PERSIST_FORMATS, type PersistFormat };

export interface PersistRoute {
  /** "default" or an IPv4 CIDR. */
  dst: string;
  via?: string;
  metric?: number;
}

export interface PersistInput {
  /** The bridge, e.g. "virbr1". */
  bridge: string;
  /** The physical NIC that becomes the bridge's port, e.g. "eth1". */
  uplink: string;
  /** The bridge MAC = the uplink's MAC, lower-case "aa:bb:cc:dd:ee:ff". */
  mac: string;
  /** Only when not 1500. */
  mtu?: number;
  /** The uplink's address was dynamic: the bridge runs the host's DHCP client. */
  dhcp: boolean;
  /** Static IPv4 CIDRs moved to the bridge (empty when dhcp). */
  addresses: string[];
  /** Static routes moved to the bridge; connected routes are not listed. */
  routes: PersistRoute[];
}

export interface PersistFile {
  /** Absolute path on the target system. */
  path: string;
  content: string;
  mode: number;
}

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

interface Checked {
  bridge: string;
  uplink: string;
  mac: string;
  mtu: number | undefined;
  dhcp: boolean;
  addresses: Array<{ cidr: string; ip: string; prefix: number }>;
  gateway: { via: string; metric: number | undefined } | undefined;
  /** Non-default routes. */
  routes: Array<{ dst: string; via: string | undefined; metric: number | undefined }>;
}

function check(input: PersistInput): Checked {
  for (const [what, name] of [
    ['bridge', input.bridge],
    ['uplink', input.uplink],
  ] as const) {
    if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
      throw inputError('persist-bad-name', `${what} "${name}" is not an interface name`);
    }
  }
  if (input.bridge === input.uplink) {
    throw inputError('persist-bad-name', `bridge and uplink are both "${input.bridge}"`);
  }
  if (!MAC_RE.test(input.mac)) {
    throw inputError('persist-bad-mac', `MAC "${input.mac}" is not a lower-case aa:bb:cc:dd:ee:ff address`);
  }
  if (input.mtu !== undefined && !(Number.isInteger(input.mtu) && input.mtu >= 68 && input.mtu <= 65535)) {
    throw inputError('persist-bad-mtu', `MTU ${input.mtu} is out of range`, 'an MTU is 68-65535');
  }
  const ip = (text: string, what: string): string => {
    if (parseIpv4(text) === undefined)
      throw inputError('persist-bad-route', `${what} "${text}" is not an IPv4 address`);
    return text;
  };
  const metric = (m: number | undefined): number | undefined => {
    if (m !== undefined && !(Number.isInteger(m) && m >= 0 && m <= 0xffffffff)) {
      throw inputError('persist-bad-route', `route metric ${m} is not a 32-bit unsigned integer`);
    }
    return m;
  };
  if (input.dhcp && input.addresses.length > 0) {
    throw inputError(
      'persist-dhcp-static',
      `a DHCP bridge cannot also carry static addresses (${input.addresses.join(', ')})`,
    );
  }
  const addresses = input.addresses.map((text) => {
    const c = parseCidr(text);
    if (!c) throw inputError('persist-bad-address', `address "${text}" is not an IPv4 CIDR`);
    const [addr = ''] = text.split('/');
    return { cidr: text, ip: addr, prefix: c.prefix };
  });
  if (!input.dhcp && addresses.length === 0 && input.routes.length > 0) {
    throw inputError('persist-bad-route', 'static routes need an address on the bridge, and none was given');
  }
  let gateway: Checked['gateway'];
  const routes: Checked['routes'] = [];
  for (const r of input.routes) {
    const via = r.via === undefined ? undefined : ip(r.via, `gateway of route ${r.dst}`);
    if (r.dst === 'default') {
      if (input.dhcp) {
        throw inputError(
          'persist-dhcp-static',
          `a DHCP bridge gets its default route from the DHCP server, not a static one (via ${r.via ?? '-'})`,
        );
      }
      if (via === undefined) {
        throw inputError('persist-bad-route', 'a default route without a gateway cannot be persisted');
      }
      if (gateway !== undefined) {
        throw inputError(
          'persist-bad-route',
          `more than one default route (via ${gateway.via} and via ${via})`,
          'keep one default route on the uplink',
        );
      }
      gateway = { via, metric: metric(r.metric) };
      continue;
    }
    if (!parseCidr(r.dst))
      throw inputError('persist-bad-route', `route destination "${r.dst}" is not an IPv4 CIDR`);
    routes.push({ dst: r.dst, via, metric: metric(r.metric) });
  }
  return {
    bridge: input.bridge,
    uplink: input.uplink,
    mac: input.mac,
    mtu: input.mtu,
    dhcp: input.dhcp,
    addresses,
    gateway,
    routes,
  };
}

const text = (lines: string[]): string => `${lines.join('\n')}\n`;

function header(c: Checked, lead = '#'): string {
  return `${lead} Generated by kvmnet: bridge ${c.bridge} with uplink ${c.uplink} (kvmnet net persist).`;
}

/** `ip route` words of a non-default route, without the device. */
function ipRouteArgs(r: Checked['routes'][number]): string {
  return [
    r.dst,
    r.via === undefined ? '' : `via ${r.via}`,
    r.metric === undefined ? '' : `metric ${r.metric}`,
  ]
    .filter((w) => w !== '')
    .join(' ');
}

function renderIfcfg(c: Checked): PersistFile[] {
  const dir = '/etc/sysconfig/network-scripts';
  const br = [
    header(c),
    `DEVICE=${c.bridge}`,
    'TYPE=Bridge',
    `BOOTPROTO=${c.dhcp ? 'dhcp' : 'none'}`,
    'ONBOOT=yes',
  ];
  const indexed = c.addresses.length > 1;
  c.addresses.forEach((a, i) => {
    const n = indexed ? String(i) : '';
    br.push(`IPADDR${n}=${a.ip}`, `PREFIX${n}=${a.prefix}`);
  });
  if (c.gateway) {
    br.push(`GATEWAY=${c.gateway.via}`);
    if (c.gateway.metric !== undefined) {
      // METRIC: the default route's metric for initscripts' ifup; IPV4_ROUTE_METRIC: the same
      // for NetworkManager's ifcfg-rh plugin (which ignores METRIC).
      br.push(`METRIC=${c.gateway.metric}`, `IPV4_ROUTE_METRIC=${c.gateway.metric}`);
    }
  }
  br.push(`MACADDR=${c.mac}`, 'STP=off', 'DELAY=0');
  if (c.mtu !== undefined) br.push(`MTU=${c.mtu}`);
  const port = [header(c), `DEVICE=${c.uplink}`, 'TYPE=Ethernet', 'ONBOOT=yes', `BRIDGE=${c.bridge}`];
  if (c.mtu !== undefined) port.push(`MTU=${c.mtu}`);
  const files: PersistFile[] = [
    { path: `${dir}/ifcfg-${c.bridge}`, content: text(br), mode: 0o644 },
    { path: `${dir}/ifcfg-${c.uplink}`, content: text(port), mode: 0o644 },
  ];
  if (c.routes.length > 0) {
    files.push({
      path: `${dir}/route-${c.bridge}`,
      content: text([header(c), ...c.routes.map((r) => `${ipRouteArgs(r)} dev ${c.bridge}`)]),
      mode: 0o644,
    });
  }
  return files;
}

function renderNetworkd(c: Checked): PersistFile[] {
  const dir = '/etc/systemd/network';
  const netdev = [header(c), '[NetDev]', `Name=${c.bridge}`, 'Kind=bridge', `MACAddress=${c.mac}`];
  if (c.mtu !== undefined) netdev.push(`MTUBytes=${c.mtu}`);
  netdev.push('', '[Bridge]', 'STP=false', 'ForwardDelaySec=0');

  const network = [header(c), '[Match]', `Name=${c.bridge}`, '', '[Network]'];
  if (c.dhcp) network.push('DHCP=ipv4');
  for (const a of c.addresses) network.push(`Address=${a.cidr}`);
  // Like ifup and netplan: the host's address does not wait for the uplink's carrier.
  network.push('ConfigureWithoutCarrier=yes');
  if (c.dhcp) network.push('', '[DHCPv4]', 'ClientIdentifier=mac');
  const route = (dst: string | undefined, via: string | undefined, metric: number | undefined): void => {
    network.push('', '[Route]');
    if (dst !== undefined) network.push(`Destination=${dst}`);
    if (via !== undefined) network.push(`Gateway=${via}`);
    if (metric !== undefined) network.push(`Metric=${metric}`);
  };
  if (c.gateway) route(undefined, c.gateway.via, c.gateway.metric);
  for (const r of c.routes) route(r.dst, r.via, r.metric);

  const port = [header(c), '[Match]', `Name=${c.uplink}`, '', '[Network]', `Bridge=${c.bridge}`];
  if (c.mtu !== undefined) port.push('', '[Link]', `MTUBytes=${c.mtu}`);
  return [
    { path: `${dir}/10-kvmnet-${c.bridge}.netdev`, content: text(netdev), mode: 0o644 },
    { path: `${dir}/10-kvmnet-${c.bridge}.network`, content: text(network), mode: 0o644 },
    { path: `${dir}/10-kvmnet-${c.uplink}.network`, content: text(port), mode: 0o644 },
  ];
}

/** A stable v4-format UUID from a hash of the seed, so that rendering twice gives the same file. */
export function stableUuid(seed: string): string {
  const b = createHash('sha256').update(seed).digest().subarray(0, 16);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40; // version 4
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function renderNm(c: Checked): PersistFile[] {
  const dir = '/etc/NetworkManager/system-connections';
  const br = [
    header(c),
    '[connection]',
    `id=kvmnet-${c.bridge}`,
    `uuid=${stableUuid(`kvmnet/nm/${c.bridge}`)}`,
    'type=bridge',
    `interface-name=${c.bridge}`,
    'autoconnect=true',
    // Activating the bridge activates its port profile too.
    'autoconnect-slaves=1',
    '',
    '[bridge]',
    `mac-address=${c.mac}`,
    'stp=false',
    'forward-delay=0',
  ];
  if (c.mtu !== undefined) br.push('', '[ethernet]', `mtu=${c.mtu}`);
  br.push('', '[ipv4]');
  if (c.dhcp) br.push('method=auto', 'dhcp-client-id=mac');
  else br.push('method=manual');
  c.addresses.forEach((a, i) => br.push(`address${i + 1}=${a.cidr}`));
  if (c.gateway) {
    br.push(`gateway=${c.gateway.via}`);
    if (c.gateway.metric !== undefined) br.push(`route-metric=${c.gateway.metric}`);
  }
  c.routes.forEach((r, i) => {
    const parts = [r.dst];
    if (r.via !== undefined || r.metric !== undefined) parts.push(r.via ?? '0.0.0.0');
    if (r.metric !== undefined) parts.push(String(r.metric));
    br.push(`route${i + 1}=${parts.join(',')}`);
  });
  br.push('', '[ipv6]', 'method=auto');

  const port = [
    header(c),
    '[connection]',
    `id=kvmnet-${c.uplink}`,
    `uuid=${stableUuid(`kvmnet/nm/${c.bridge}/port/${c.uplink}`)}`,
    'type=ethernet',
    `interface-name=${c.uplink}`,
    // master/slave-type rather than controller/port-type: NetworkManager before 1.46 (Debian 12,
    // RHEL 9) only knows these names, and later versions still read them.
    `master=${c.bridge}`,
    'slave-type=bridge',
    'autoconnect=true',
    // Preferred over an older profile for the same NIC (e.g. "Wired connection 1").
    'autoconnect-priority=10',
  ];
  // [ethernet] and [bridge-port] even when empty: NetworkManager adds them when it loads the profile
  // anyway (normalization), and with them the file is valid as written.
  port.push('', '[ethernet]');
  if (c.mtu !== undefined) port.push(`mtu=${c.mtu}`);
  port.push('', '[bridge-port]');
  return [
    { path: `${dir}/kvmnet-${c.bridge}.nmconnection`, content: text(br), mode: 0o600 },
    { path: `${dir}/kvmnet-${c.uplink}.nmconnection`, content: text(port), mode: 0o600 },
  ];
}

function renderIfupdown(c: Checked): PersistFile[] {
  const lines = [
    header(c),
    '# Sourced by /etc/network/interfaces ("source /etc/network/interfaces.d/*"); the bridge_*',
    '# options need the bridge-utils package.',
    `auto ${c.bridge}`,
  ];
  const [first, ...more] = c.addresses;
  if (c.dhcp || first === undefined) lines.push(`iface ${c.bridge} inet ${c.dhcp ? 'dhcp' : 'manual'}`);
  else {
    lines.push(`iface ${c.bridge} inet static`, `    address ${first.cidr}`);
  }
  if (c.gateway) {
    lines.push(`    gateway ${c.gateway.via}`);
    if (c.gateway.metric !== undefined) lines.push(`    metric ${c.gateway.metric}`);
  }
  lines.push(`    hwaddress ether ${c.mac}`);
  if (c.mtu !== undefined) lines.push(`    mtu ${c.mtu}`); // bridge-utils sets it on the ports too
  lines.push(`    bridge_ports ${c.uplink}`, '    bridge_stp off', '    bridge_fd 0');
  for (const r of c.routes) lines.push(`    up ip route add ${ipRouteArgs(r)} dev ${c.bridge}`);
  // Further addresses: one more stanza each, applied after the first (interfaces(5)).
  for (const a of more) lines.push('', `iface ${c.bridge} inet static`, `    address ${a.cidr}`);
  lines.push('', `iface ${c.uplink} inet manual`);
  return [{ path: `/etc/network/interfaces.d/kvmnet-${c.bridge}`, content: text(lines), mode: 0o644 }];
}

function renderNetplan(c: Checked): PersistFile[] {
  const eth: Record<string, unknown> = { dhcp4: false };
  if (c.mtu !== undefined) eth['mtu'] = c.mtu;
  const br: Record<string, unknown> = { interfaces: [c.uplink], macaddress: c.mac };
  if (c.mtu !== undefined) br['mtu'] = c.mtu;
  if (c.dhcp) {
    br['dhcp4'] = true;
    br['dhcp-identifier'] = 'mac';
  }
  if (c.addresses.length > 0) br['addresses'] = c.addresses.map((a) => a.cidr);
  const routes: Array<Record<string, unknown>> = [];
  const route = (to: string, via: string | undefined, metric: number | undefined): void => {
    const r: Record<string, unknown> = { to };
    if (via !== undefined) r['via'] = via;
    else r['scope'] = 'link';
    if (metric !== undefined) r['metric'] = metric;
    routes.push(r);
  };
  if (c.gateway) route('default', c.gateway.via, c.gateway.metric);
  for (const r of c.routes) route(r.dst, r.via, r.metric);
  if (routes.length > 0) br['routes'] = routes;
  br['parameters'] = { stp: false, 'forward-delay': 0 };

  const doc = new Document({
    network: { version: 2, ethernets: { [c.uplink]: eth }, bridges: { [c.bridge]: br } },
  });
  // Quoted: an all-digit MAC such as 52:54:00:12:34:56 is a base-60 number to a YAML 1.1 reader.
  const mac = doc.getIn(['network', 'bridges', c.bridge, 'macaddress'], true);
  if (mac instanceof Scalar) mac.type = Scalar.QUOTE_DOUBLE;
  doc.commentBefore = header(c, '');
  return [{ path: `/etc/netplan/60-kvmnet-${c.bridge}.yaml`, content: doc.toString(), mode: 0o600 }];
}

/** The files of one format, in a stable order; throws an input KvmnetError on inconsistent input. */
export function renderPersist(format: PersistFormat, input: PersistInput): PersistFile[] {
  const c = check(input);
  switch (format) {
    case 'ifcfg':
      return renderIfcfg(c);
    case 'networkd':
      return renderNetworkd(c);
    case 'nm':
      return renderNm(c);
    case 'ifupdown':
      return renderIfupdown(c);
    case 'netplan':
      return renderNetplan(c);
  }
}
