// Ports: a VM's network interface on a kvmnet network, made of a persistent tap device (vnetN)
// that kvmnet creates and QEMU opens by name. Pure: validation, naming and the QEMU arguments.
import { randomBytes } from 'node:crypto';
import { inputError } from './errors.js';
import { broadcastOf, contains, formatIpv4, networkOf, parseCidr, parseIpv4 } from './ipv4.js';
import { isMulticastMac, normalizeMac } from './mac.js';
import type { NetworkDef } from './network.js';

export type LinkState = 'up' | 'down';

/** Who makes the port's tap: kvmnet (`port add`), or libvirt (`libvirt interface`, the hook). */
export type TapOwner = 'kvmnet' | 'libvirt';

export interface PortDef {
  /**
   * The tap device, vnetN; unique on the host. A libvirt port's tap is libvirt's: its name is
   * learnt from the libvirt hook when the domain starts and is '' while the domain is not running.
   */
  name: string;
  /** Absent: 'kvmnet' (state written before libvirt ports existed). */
  tap?: TapOwner;
  network: string;
  vm: string;
  /** The VM's Nth port (across networks): shown as VM/netN and used as QEMU's netdev id. */
  index: number;
  /** The guest's MAC. The tap's MAC is the same with the first byte set to fe. */
  mac: string;
  /** Static DHCP reservation and DNS name (the VM name) on the network. */
  ip?: string;
  model: string;
  /** The cable: down unplugs the guest without touching QEMU. */
  link: LinkState;
  /**
   * Anti-spoofing (table bridge kvmnet): frames from the tap must carry the guest's MAC and, once
   * it has a reservation or lease, its IPv4 address. Absent: on (only `false` is stored).
   */
  spoofCheck?: boolean;
  /** Bridge port isolation: the port reaches the bridge (gateway) and uplink, not other isolated ports. Absent: off. */
  isolated?: boolean;
}

export interface PortInput {
  network: string;
  vm: string;
  mac?: string;
  ip?: string;
  model?: string;
  /** 'libvirt': libvirt creates the tap (`kvmnet libvirt interface`); kvmnet only records the port. */
  tap?: TapOwner;
  /** Default true. */
  spoofCheck?: boolean;
  /** Default false. */
  isolated?: boolean;
}

export const DEFAULT_MODEL = 'virtio-net-pci';
/** VM names are DNS labels: they become the guest's host name in the network's DNS. */
export const VM_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MODEL_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export function portId(p: Pick<PortDef, 'vm' | 'index'>): string {
  return `${p.vm}/net${p.index}`;
}

export function isLibvirtPort(p: Pick<PortDef, 'tap'>): boolean {
  return p.tap === 'libvirt';
}

/**
 * The port's key in the stored state: its tap name, or for a libvirt port (whose tap comes and
 * goes with the domain) `libvirt:VM/netN`.
 */
export function portKey(p: Pick<PortDef, 'name' | 'tap' | 'vm' | 'index'>): string {
  return isLibvirtPort(p) ? `libvirt:${portId(p)}` : p.name;
}

/** The tap name for display: a libvirt port's is "-" while its domain is not running. */
export function tapText(p: Pick<PortDef, 'name'>): string {
  return p.name === '' ? '-' : p.name;
}

/** Is anti-spoofing on for the port (the default)? */
export function spoofCheckOf(p: Pick<PortDef, 'spoofCheck'>): boolean {
  return p.spoofCheck !== false;
}

export function tapMac(guestMac: string): string {
  return `fe${guestMac.slice(2)}`;
}

export function validateVmName(vm: string): void {
  if (!VM_RE.test(vm)) {
    throw inputError(
      'invalid-vm',
      `VM name "${vm}" is not valid`,
      'use a DNS label: 1-63 letters, digits and "-", not starting or ending with "-"',
    );
  }
}

export function randomGuestMac(used: Set<string>): string {
  for (;;) {
    const b = randomBytes(3);
    const mac = `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    if (!used.has(mac)) return mac;
  }
}

export function pickTapName(used: Set<string>): string {
  for (let n = 0; ; n++) if (!used.has(`vnet${n}`)) return `vnet${n}`;
}

export interface PortContext {
  net: NetworkDef;
  ports: PortDef[];
  /** Interface names on the host (taps of kvmnet's ports included). */
  links: Set<string>;
}

/** Validates a new port and fills its defaults. */
export function buildPort(input: PortInput, ctx: PortContext): PortDef {
  validateVmName(input.vm);
  const used = new Map(ctx.ports.map((p) => [p.mac, p]));
  const usedTaps = new Map(ctx.ports.map((p) => [tapMac(p.mac), p]));
  let mac: string;
  if (input.mac === undefined) {
    // Also avoid the bridge's MAC and any MAC whose tap MAC (fe:…) is taken.
    const avoid = new Set([...used.keys(), ctx.net.mac]);
    do mac = randomGuestMac(avoid);
    while (usedTaps.has(tapMac(mac)) && avoid.add(mac));
  } else {
    const m = normalizeMac(input.mac);
    if (!m)
      throw inputError(
        'invalid-mac',
        `mac "${input.mac}" is not a MAC address`,
        'write it as 52:54:00:xx:xx:xx',
      );
    if (isMulticastMac(m)) {
      throw inputError(
        'invalid-mac',
        `mac ${m} is a multicast address`,
        'a guest MAC must be unicast: its first byte must be even, e.g. 52:54:00:…',
      );
    }
    if (m.startsWith('fe:')) {
      throw inputError(
        'invalid-mac',
        `mac ${m} starts with fe`,
        "kvmnet gives the tap the guest's MAC with first byte fe; use e.g. 52:54:00:…",
      );
    }
    const other = used.get(m);
    if (other)
      throw inputError(
        'mac-taken',
        `mac ${m} is already used by port ${portId(other)} (${tapText(other)})`,
        'pick another MAC or leave --mac out',
      );
    if (m === ctx.net.mac) {
      throw inputError(
        'mac-taken',
        `mac ${m} is the MAC of bridge ${ctx.net.bridge}`,
        'pick another MAC or leave --mac out',
      );
    }
    const host = ctx.net.dhcpHosts?.find((h) => h.mac === m);
    if (host) {
      throw inputError(
        'mac-taken',
        `mac ${m} is a static DHCP host of "${ctx.net.name}" (${host.ip})`,
        'pick another MAC or leave --mac out',
      );
    }
    const twin = usedTaps.get(tapMac(m));
    if (twin) {
      throw inputError(
        'mac-taken',
        `mac ${m} would give its tap ${tapMac(m)}, the tap MAC of port ${portId(twin)} (${tapText(twin)}, guest ${twin.mac})`,
        'taps differ from their guest only in the first byte: pick a MAC that differs in the last five bytes',
      );
    }
    mac = m;
  }
  const model = input.model ?? DEFAULT_MODEL;
  if (!MODEL_RE.test(model)) {
    throw inputError(
      'invalid-model',
      `model "${model}" is not a QEMU device name`,
      'e.g. virtio-net-pci, e1000e, rtl8139',
    );
  }
  const libvirt = input.tap === 'libvirt';
  const port: PortDef = {
    name: libvirt ? '' : pickTapName(new Set([...ctx.links, ...ctx.ports.map((p) => p.name)])),
    ...(libvirt ? { tap: 'libvirt' as const } : {}),
    network: input.network,
    vm: input.vm,
    index: nextIndex(input.vm, ctx.ports),
    mac,
    model,
    link: 'up',
    ...(input.spoofCheck === false ? { spoofCheck: false } : {}),
    ...(input.isolated === true ? { isolated: true } : {}),
  };
  if (input.ip !== undefined) port.ip = checkReservation(input.ip, ctx);
  return port;
}

export function nextIndex(vm: string, ports: PortDef[]): number {
  const taken = new Set(ports.filter((p) => p.vm === vm).map((p) => p.index));
  let i = 0;
  while (taken.has(i)) i++;
  return i;
}

/**
 * A reservation must be a host address of the subnet other than the gateway, and not reserved by
 * another port. It may lie inside or outside the DHCP pool: dnsmasq never hands a reserved
 * address to another guest. A network without DHCP takes no reservations.
 */
export function checkReservation(ipText: string, ctx: PortContext): string {
  const ip = parseIpv4(ipText);
  if (ip === undefined)
    throw inputError('invalid-ip', `ip "${ipText}" is not an IPv4 address`, 'write it as a.b.c.d');
  const net = ctx.net;
  if (net.subnet === undefined) {
    throw inputError(
      'no-dhcp',
      `network "${net.name}" is bridged: the LAN's DHCP server assigns its guests' addresses`,
      "reserve the address on the LAN's DHCP server instead of --ip",
    );
  }
  const subnet = parseCidr(net.subnet);
  if (!subnet) throw new Error(`stored subnet of ${net.name} is invalid`);
  if (!net.dhcp) {
    throw inputError(
      'no-dhcp',
      `network "${net.name}" has no DHCP server, so --ip cannot be reserved`,
      'configure the address inside the guest, or give the network a DHCP range',
    );
  }
  if (!contains(subnet, ip))
    throw inputError(
      'invalid-ip',
      `ip ${ipText} is outside subnet ${net.subnet} of "${net.name}"`,
      'pick an address inside the subnet',
    );
  if (ip === networkOf(subnet) || ip === broadcastOf(subnet)) {
    throw inputError(
      'invalid-ip',
      `ip ${ipText} is the ${ip === networkOf(subnet) ? 'network' : 'broadcast'} address of ${net.subnet}`,
      'pick a host address',
    );
  }
  const text = formatIpv4(ip);
  if (text === net.gateway)
    throw inputError('invalid-ip', `ip ${text} is the gateway of "${net.name}"`, 'pick another host address');
  const host = net.dhcpHosts?.find((h) => h.ip === text);
  if (host)
    throw inputError(
      'ip-taken',
      `ip ${text} is a static DHCP host of "${net.name}"${host.name ? ` (${host.name})` : ''}`,
      'pick another address',
    );
  const other = ctx.ports.find((p) => p.network === net.name && p.ip === text);
  if (other)
    throw inputError(
      'ip-taken',
      `ip ${text} is already reserved for ${portId(other)} (${tapText(other)})`,
      'pick another address',
    );
  return text;
}

/** QEMU arguments that open the port's tap by name (kvmnet created it; QEMU must not run scripts). */
export function qemuArgs(p: PortDef): string[] {
  if (isLibvirtPort(p)) return []; // libvirt starts QEMU with its own tap
  const id = `net${p.index}`;
  return [
    '-netdev',
    `tap,id=${id},ifname=${p.name},script=no,downscript=no`,
    '-device',
    `${p.model},netdev=${id},mac=${p.mac}`,
  ];
}

/** dnsmasq dhcp-hostsfile lines: MAC,IP,NAME per reservation. */
export function renderDhcpHosts(ports: PortDef[]): string {
  return reservations(ports)
    .map((p) => `${p.mac},${p.ip ?? ''},${p.vm}\n`)
    .join('');
}

/** dnsmasq addn-hosts lines: IP NAME per reservation. */
export function renderHosts(ports: PortDef[]): string {
  return reservations(ports)
    .map((p) => `${p.ip ?? ''} ${p.vm}\n`)
    .join('');
}

function reservations(ports: PortDef[]): PortDef[] {
  return ports
    .filter((p) => p.ip !== undefined)
    .sort((a, b) => (parseIpv4(a.ip ?? '') ?? 0) - (parseIpv4(b.ip ?? '') ?? 0));
}
