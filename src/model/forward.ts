// Port forwards (DNAT): a host address/protocol/port range that reaches a guest's port range. Pure:
// parsing, validation against the network, other forwards and ports, and expansion into the
// per-port map elements the firewall renders.
import { inputError } from './errors.js';
import { broadcastOf, contains, formatIpv4, networkOf, parseCidr, parseIpv4 } from './ipv4.js';
import type { NetworkDef } from './network.js';
import { portId, type PortDef } from './port.js';

export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** The most ports one forward may span (each port is one element in kvmnet's nft maps). */
export const MAX_RANGE = 4096;

export interface ForwardDef {
  network: string;
  proto: Protocol;
  /** Listen only on this host address; absent: every host address but kvmnet gateways and loopback. */
  hostIp?: string;
  port: number;
  portEnd: number;
  /** A VM name (follows its reservation on the network) or an address in the subnet. */
  target: string;
  targetPort: number;
  description?: string;
}

export interface ForwardInput {
  network: string;
  proto: string;
  ports: string;
  target: string;
  hostIp?: string;
  description?: string;
}

export function forwardId(f: Pick<ForwardDef, 'proto' | 'hostIp' | 'port' | 'portEnd'>): string {
  const ports = f.port === f.portEnd ? `${f.port}` : `${f.port}-${f.portEnd}`;
  return f.hostIp === undefined ? `${f.proto}/${ports}` : `${f.proto}/${f.hostIp}/${ports}`;
}

export function portsText(start: number, end: number): string {
  return start === end ? `${start}` : `${start}-${end}`;
}

/** "8080" or "10000-10010", each port 1-65535, not reversed. */
export function parsePortRange(text: string, field: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const a = Number(m?.[1]);
  const b = m?.[2] === undefined ? a : Number(m[2]);
  if (!m || a < 1 || a > 65535 || b < 1 || b > 65535) {
    throw inputError(
      'invalid-port',
      `${field} "${text}" is not a port or port range in 1-65535`,
      'write e.g. 8080 or 10000-10010',
    );
  }
  if (a > b) throw inputError('invalid-port', `${field} "${text}" is reversed`, `write ${b}-${a}`);
  return [a, b];
}

/** Target "kvm1:80", "192.168.122.60:53", "kvm2:20000-20010", or "kvm1" (same ports as the host side). */
export function parseTarget(text: string): { target: string; ports?: string } {
  const i = text.lastIndexOf(':');
  if (i < 0) return { target: text };
  return { target: text.slice(0, i), ports: text.slice(i + 1) };
}

export interface ForwardContext {
  net: NetworkDef;
  /** Whether the network's mode allows forwards (not isolated). */
  allowed: boolean;
  ports: PortDef[];
  /** Every stored forward on the host (all networks). */
  forwards: ForwardDef[];
}

export function buildForward(input: ForwardInput, ctx: ForwardContext): ForwardDef {
  if (!ctx.allowed) {
    throw inputError(
      'forwards-not-allowed',
      `network "${ctx.net.name}" is ${ctx.net.mode === 'bridge' ? 'bridged' : ctx.net.mode}: it takes no port forwards`,
      ctx.net.mode === 'bridge'
        ? 'its guests sit on the LAN: reach them at their LAN address'
        : 'forward to a guest on a nat or routed network',
    );
  }
  if (!(PROTOCOLS as readonly string[]).includes(input.proto)) {
    throw inputError('invalid-protocol', `protocol "${input.proto}" is not tcp or udp`, 'use tcp or udp');
  }
  const proto = input.proto as Protocol;
  const [port, portEnd] = parsePortRange(input.ports, 'host port');
  if (portEnd - port + 1 > MAX_RANGE) {
    throw inputError(
      'invalid-port',
      `host port range ${input.ports} spans ${portEnd - port + 1} ports`,
      `one forward spans at most ${MAX_RANGE} ports`,
    );
  }
  const t = parseTarget(input.target);
  if (t.target === '')
    throw inputError(
      'invalid-target',
      `target "${input.target}" names no VM or address`,
      'write VM:PORT or ADDRESS:PORT, e.g. kvm1:80',
    );
  const [targetPort, targetEnd] =
    t.ports === undefined ? [port, portEnd] : parsePortRange(t.ports, 'target port');
  if (targetEnd - targetPort !== portEnd - port) {
    throw inputError(
      'invalid-port',
      `host ports ${portsText(port, portEnd)} and target ports ${portsText(targetPort, targetEnd)} differ in length`,
      'map a range onto a range of the same length, e.g. 10000-10010 kvm2:20000-20010',
    );
  }
  let hostIp: string | undefined;
  if (input.hostIp !== undefined) {
    const n = parseIpv4(input.hostIp);
    if (n === undefined)
      throw inputError(
        'invalid-address',
        `host ip "${input.hostIp}" is not an IPv4 address`,
        'write it as a.b.c.d',
      );
    hostIp = formatIpv4(n);
  }
  const f: ForwardDef = { network: ctx.net.name, proto, port, portEnd, target: t.target, targetPort };
  if (hostIp !== undefined) f.hostIp = hostIp;
  if (input.description !== undefined) {
    if (!/^[\x20-\x7e]{0,64}$/.test(input.description) || /["\\]/.test(input.description)) {
      throw inputError(
        'invalid-description',
        'description must be at most 64 printable ASCII characters without quotes or backslashes',
        'shorten it',
      );
    }
    f.description = input.description;
  }
  targetAddress(f, ctx); // the target must resolve now
  for (const o of ctx.forwards) {
    if (
      o.proto === f.proto &&
      o.port <= f.portEnd &&
      f.port <= o.portEnd &&
      (o.hostIp === undefined || f.hostIp === undefined || o.hostIp === f.hostIp)
    ) {
      throw inputError(
        'forward-conflict',
        `${f.proto} ${hostText(f)}${portsText(f.port, f.portEnd)} overlaps the forward ${forwardId(o)} of "${o.network}" (to ${o.target}:${portsText(o.targetPort, o.targetPort + o.portEnd - o.port)})`,
        'pick other host ports, or remove that forward first',
      );
    }
  }
  return f;
}

function hostText(f: ForwardDef): string {
  return f.hostIp === undefined ? '' : `${f.hostIp}:`;
}

/** The guest address a forward reaches: the target address, or the VM's reservation on the network. */
export function targetAddress(f: ForwardDef, ctx: { net: NetworkDef; ports: PortDef[] }): string {
  const ip = parseIpv4(f.target);
  if (ctx.net.subnet === undefined) {
    throw inputError(
      'forwards-not-allowed',
      `network "${ctx.net.name}" is bridged: its guests sit on the LAN`,
      'reach them at their LAN address',
    );
  }
  const subnet = parseCidr(ctx.net.subnet);
  if (!subnet) throw new Error(`stored subnet of ${ctx.net.name} is invalid`);
  if (ip !== undefined) {
    if (
      !contains(subnet, ip) ||
      ip === networkOf(subnet) ||
      ip === broadcastOf(subnet) ||
      formatIpv4(ip) === ctx.net.gateway
    ) {
      throw inputError(
        'invalid-target',
        `target ${f.target} is not a guest address of "${ctx.net.name}" (${ctx.net.subnet}, gateway ${ctx.net.gateway})`,
        'forward to a host address of the subnet other than the gateway, or to a VM name',
      );
    }
    return formatIpv4(ip);
  }
  const mine = ctx.ports
    .filter((p) => p.vm === f.target && p.network === ctx.net.name)
    .sort((a, b) => a.index - b.index);
  if (mine.length === 0) {
    throw inputError(
      'unknown-vm',
      `VM "${f.target}" has no port on network "${ctx.net.name}"`,
      `add one with \`kvmnet port add ${ctx.net.name} --vm ${f.target} --ip ADDRESS\``,
    );
  }
  const reserved = mine.find((p) => p.ip !== undefined);
  if (!reserved?.ip) {
    throw inputError(
      'no-reservation',
      `VM "${f.target}" has no reserved address on "${ctx.net.name}" (${mine.map((p) => portId(p)).join(', ')})`,
      `reserve one with \`kvmnet port set ${portId(mine[0] ?? { vm: f.target, index: 0 })} --ip ADDRESS\`, or forward to an address`,
    );
  }
  return reserved.ip;
}

/** One DNAT rule per port of the range, keyed for kvmnet's forward maps. */
export interface DnatEntry {
  hostIp?: string;
  proto: Protocol;
  port: number;
  targetIp: string;
  targetPort: number;
}

export function expandForward(f: ForwardDef, targetIp: string): DnatEntry[] {
  const out: DnatEntry[] = [];
  for (let i = 0; i <= f.portEnd - f.port; i++) {
    const e: DnatEntry = { proto: f.proto, port: f.port + i, targetIp, targetPort: f.targetPort + i };
    if (f.hostIp !== undefined) e.hostIp = f.hostIp;
    out.push(e);
  }
  return out;
}
