// The declarative definitions file (`kvmnet apply -f`, `kvmnet export`): YAML in, YAML out.
// Parsing reports unknown keys and wrong types with the key's path and line.
import { LineCounter, parseDocument, stringify, isMap, isNode, isScalar, type Document } from 'yaml';
import { z } from 'zod';
import { inputError } from './errors.js';
import { PROTOCOLS, portsText, type ForwardDef, type ForwardInput } from './forward.js';
import { networkFileSchema, type DnsConfig, type NetworkDef, type NetworkInput } from './network.js';

export const FILE_VERSION = 1;

export type NetworkFileEntry = z.infer<typeof networkFileSchema>;

const forwardFileSchema = z
  .object({
    network: z.string(),
    proto: z.enum(PROTOCOLS),
    port: z.union([z.number().int(), z.string()]),
    to: z.string(),
    hostIp: z.string().optional(),
    description: z.string().optional(),
  })
  .strict();

const fileSchema = z
  .object({
    version: z.literal(FILE_VERSION).optional(),
    networks: z.record(z.string(), networkFileSchema).nullable().optional(),
    forwards: z.array(forwardFileSchema).nullable().optional(),
  })
  .strict();

/** A definitions file: networks, and port forwards (a missing `forwards` key means none). */
export interface DefinitionsFile {
  networks: NetworkInput[];
  forwards: ForwardInput[];
}

/** The line of the key at `path` (the key itself, not its value), or of its nearest parent. */
function lineOf(doc: Document, lc: LineCounter, path: PropertyKey[]): number | undefined {
  for (let n = path.length; n > 0; n--) {
    const parent: unknown = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(path[n - 1]));
      if (pair && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
    }
  }
  const root: unknown = doc.contents;
  return isNode(root) && root.range ? lc.linePos(root.range[0]).line : undefined;
}

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

/** The networks of a definitions file (see parseDefinitionsFile). */
export function parseDefinitions(text: string, file: string): NetworkInput[] {
  return parseDefinitionsFile(text, file).networks;
}

export function parseDefinitionsFile(text: string, file: string): DefinitionsFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e?.pos ? lc.linePos(e.pos[0]).line : undefined;
    throw inputError(
      'invalid-yaml',
      `${file}${line ? `:${line}` : ''}: ${e?.message.split('\n')[0] ?? 'not valid YAML'}`,
      'fix the YAML syntax',
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    // An unknown key is usually a misspelt one: report it before the "missing key" it causes.
    const issue = r.error.issues.find((i) => i.code === 'unrecognized_keys') ?? r.error.issues[0];
    if (!issue) throw inputError('invalid-file', `${file}: not a kvmnet definitions file`, 'see docs/cli.md');
    const line = lineOf(doc, lc, issuePath(issue));
    const d = describeIssue(issue, raw);
    throw inputError('invalid-file', `${file}${line ? `:${line}` : ''}: ${d.message}`, d.hint);
  }
  const out: NetworkInput[] = Object.entries(r.data.networks ?? {}).map(([name, n]) =>
    networkInputOf(name, n),
  );
  const forwards: ForwardInput[] = (r.data.forwards ?? []).map((f) => {
    const input: ForwardInput = { network: f.network, proto: f.proto, ports: String(f.port), target: f.to };
    if (f.hostIp !== undefined) input.hostIp = f.hostIp;
    if (f.description !== undefined) input.description = f.description;
    return input;
  });
  return { networks: out, forwards };
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

export function renderDefinitions(defs: NetworkDef[], forwardDefs: ForwardDef[] = []): string {
  const networks: Record<string, unknown> = {};
  for (const d of [...defs].sort((a, b) => a.name.localeCompare(b.name))) {
    networks[d.name] =
      d.mode === 'bridge'
        ? {
            mode: d.mode,
            bridge: d.bridge,
            uplink: d.uplink,
            autostart: d.autostart,
            ...(d.uuid === undefined ? {} : { uuid: d.uuid }),
          }
        : {
            mode: d.mode,
            bridge: d.bridge,
            mac: d.mac,
            subnet: d.subnet,
            gateway: d.gateway,
            dhcp: d.dhcp ?? false,
            ...(d.domain === undefined ? {} : { domain: d.domain }),
            autostart: d.autostart,
            ...optionalFields(d),
          };
  }
  return (
    '# kvmnet definitions (kvmnet export); apply with: kvmnet apply -f FILE\n' +
    stringify({ version: FILE_VERSION, networks, forwards: forwardDefs.map(forwardToFile) })
  );
}

function forwardToFile(f: ForwardDef): Record<string, unknown> {
  return {
    network: f.network,
    proto: f.proto,
    port: f.port === f.portEnd ? f.port : portsText(f.port, f.portEnd),
    to: `${f.target}:${portsText(f.targetPort, f.targetPort + f.portEnd - f.port)}`,
    ...(f.hostIp === undefined ? {} : { hostIp: f.hostIp }),
    ...(f.description === undefined ? {} : { description: f.description }),
  };
}

/** A copy without the keys whose value is undefined (zod's optional keys vs exactOptionalPropertyTypes). */
type Defined<T> = { [K in keyof T]: Exclude<T[K], undefined> };
function stripUndefined<T extends object>(o: T): Partial<Defined<T>> & Defined<Pick<T, RequiredKeys<T>>> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<Defined<T>> &
    Defined<Pick<T, RequiredKeys<T>>>;
}
type RequiredKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? never : K }[keyof T];

/** The optional fields of a subnet-owning network, in file order, only those that are set. */
function optionalFields(d: NetworkDef): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (d.uuid !== undefined) o.uuid = d.uuid;
  if (d.mtu !== undefined) o.mtu = d.mtu;
  if (d.stp !== undefined) o.stp = d.stp;
  if (d.forwardDelay !== undefined) o.forwardDelay = d.forwardDelay;
  if (d.forwardDev !== undefined) o.forwardDev = d.forwardDev;
  if (d.leaseTime !== undefined) o.leaseTime = d.leaseTime;
  if (d.dhcpHosts !== undefined) o.dhcpHosts = d.dhcpHosts;
  if (d.dns !== undefined) o.dns = d.dns;
  return o;
}
