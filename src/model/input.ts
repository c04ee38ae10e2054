// Turning validated input into the engine's: one network of a definitions file or an API body,
// and zod's issues into one-line messages with a hint. No YAML here: the daemon loads this without
// the YAML parser.
import type { z } from 'zod';
import type { DnsConfig, NetworkInput } from './network.js';
import type { networkFileSchema } from './network-schema.js';

export type NetworkFileEntry = z.infer<typeof networkFileSchema>;

/** The key path zod names for an unknown key: the object's path plus the key. */
export function issuePath(issue: z.core.$ZodIssue): PropertyKey[] {
  const p = [...issue.path];
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) p.push(issue.keys[0]);
  return p;
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

export function describeIssue(issue: z.core.$ZodIssue, raw: unknown): { message: string; hint: string } {
  const path = issuePath(issue);
  const key = path.map(String).join('.') || '(top level)';
  if (issue.code !== 'unrecognized_keys' && path.length > 0 && valueAt(raw, path) === undefined) {
    return { message: `missing key "${key}"`, hint: 'add it (see docs/cli.md, "The definitions file")' };
  }
  switch (issue.code) {
    case 'unrecognized_keys':
      return {
        message: `unknown key "${key}"`,
        hint: 'remove it or check its spelling (see docs/cli.md, "The definitions file")',
      };
    case 'invalid_type':
      return { message: `key "${key}" must be ${issue.expected}`, hint: "fix the value's type" };
    case 'invalid_value':
      return {
        message: `key "${key}" must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`,
        hint: 'use one of the listed values',
      };
    case 'invalid_union':
      return {
        message: `key "${key}" must be false or a mapping with start and end`,
        hint: 'e.g. dhcp: {start: 10.0.0.100, end: 10.0.0.199}',
      };
    default:
      return { message: `key "${key}": ${issue.message}`, hint: 'fix the value' };
  }
}

/** One network of a definitions file (or of an API request body) as the engine's input. */
export function networkInputOf(name: string, n: NetworkFileEntry): NetworkInput {
  const input: NetworkInput = { name, mode: n.mode };
  if (n.subnet !== undefined) input.subnet = n.subnet;
  if (n.uplink !== undefined) input.uplink = n.uplink;
  if (n.bridge !== undefined) input.bridge = n.bridge;
  if (n.mac !== undefined) input.mac = n.mac;
  if (n.gateway !== undefined) input.gateway = n.gateway;
  if (n.dhcp !== undefined) input.dhcp = n.dhcp === false || n.dhcp === null ? null : n.dhcp;
  if (n.domain !== undefined) input.domain = n.domain;
  if (n.autostart !== undefined) input.autostart = n.autostart;
  if (n.uuid !== undefined) input.uuid = n.uuid;
  if (n.mtu !== undefined) input.mtu = n.mtu;
  if (n.stp !== undefined) input.stp = n.stp;
  if (n.forwardDelay !== undefined) input.forwardDelay = n.forwardDelay;
  if (n.forwardDev !== undefined) input.forwardDev = n.forwardDev;
  if (n.peers !== undefined) input.peers = n.peers;
  if (n.offload !== undefined) input.offload = n.offload;
  if (n.leaseTime !== undefined) input.leaseTime = n.leaseTime;
  if (n.dhcpHosts !== undefined) input.dhcpHosts = n.dhcpHosts.map((h) => stripUndefined(h));
  if (n.dns !== undefined) {
    const d = n.dns;
    const dns: DnsConfig = stripUndefined({ enable: d.enable, forwardPlainNames: d.forwardPlainNames });
    if (d.hosts !== undefined) dns.hosts = d.hosts;
    if (d.forwarders !== undefined) dns.forwarders = d.forwarders.map((f) => stripUndefined(f));
    if (d.srv !== undefined) dns.srv = d.srv.map((x) => stripUndefined(x));
    if (d.txt !== undefined) dns.txt = d.txt;
    input.dns = dns;
  }
  return input;
}

/** A copy without the keys whose value is undefined (zod's optional keys vs exactOptionalPropertyTypes). */
type Defined<T> = { [K in keyof T]: Exclude<T[K], undefined> };
export function stripUndefined<T extends object>(
  o: T,
): Partial<Defined<T>> & Defined<Pick<T, RequiredKeys<T>>> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<Defined<T>> &
    Defined<Pick<T, RequiredKeys<T>>>;
}
type RequiredKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? never : K }[keyof T];
