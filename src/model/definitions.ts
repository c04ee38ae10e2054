// The declarative definitions file (`kvmnet apply -f`, `kvmnet export`): YAML in, YAML out.
// Parsing reports unknown keys and wrong types with the key's path and line.
import { LineCounter, parseDocument, stringify, isMap, isNode, isScalar, visit, type Document } from 'yaml';
import { z } from 'zod';
import { inputError } from './errors.js';
import { PROTOCOLS, portsText, type ForwardDef, type ForwardInput } from './forward.js';
import type { NetworkDef, NetworkInput } from './network.js';
import { networkFileSchema } from './network-schema.js';
import { describeIssue, issuePath, networkInputOf } from './input.js';
import { compareNames } from './order.js';

export const FILE_VERSION = 1;

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

/** A definitions file (kvmnet apply -f, export): also the body of the API's POST /api/apply. */
export const fileSchema = z
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

/** The yaml library's message as one line, without advice about its own API. */
function yamlMessage(code: string | undefined, message: string | undefined): string {
  if (code === 'MULTIPLE_DOCS') return 'more than one YAML document (a second "---")';
  return message?.split('\n')[0] ?? 'not valid YAML';
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
      `${file}${line ? `:${line}` : ''}: ${yamlMessage(e?.code, e?.message)}`,
      'fix the YAML syntax',
    );
  }
  // Keys must be plain scalars, and never __proto__ (which a JS object would take as its prototype,
  // silently dropping the entry).
  let badKey: { line: number | undefined; text: string } | undefined;
  visit(doc, {
    Pair(_, pair) {
      const k = pair.key;
      const ok = isScalar(k);
      if (ok && String(k.value) !== '__proto__') return undefined;
      const range = isNode(k) ? k.range : undefined;
      badKey = {
        line: range ? lc.linePos(range[0]).line : undefined,
        text: ok
          ? 'the key __proto__ is not allowed'
          : 'a key must be a plain value, not empty, a list or a mapping',
      };
      return visit.BREAK;
    },
  });
  if (badKey) {
    throw inputError(
      'invalid-file',
      `${file}${badKey.line ? `:${badKey.line}` : ''}: ${badKey.text}`,
      'use the keys of docs/cli.md, "The definitions file"',
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    // The yaml library refuses alias expansion beyond maxAliasCount (a "billion laughs" file).
    throw inputError(
      'invalid-yaml',
      `${file}: ${e instanceof Error ? e.message : String(e)}`,
      'write the values out instead of through many nested aliases (*name)',
    );
  }
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

export function renderDefinitions(defs: NetworkDef[], forwardDefs: ForwardDef[] = []): string {
  const networks: Record<string, unknown> = {};
  for (const d of [...defs].sort((a, b) => compareNames(a.name, b.name))) {
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

/** The optional fields of a subnet-owning network, in file order, only those that are set. */
function optionalFields(d: NetworkDef): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (d.uuid !== undefined) o.uuid = d.uuid;
  if (d.mtu !== undefined) o.mtu = d.mtu;
  if (d.stp !== undefined) o.stp = d.stp;
  if (d.forwardDelay !== undefined) o.forwardDelay = d.forwardDelay;
  if (d.forwardDev !== undefined) o.forwardDev = d.forwardDev;
  if (d.peers !== undefined) o.peers = d.peers;
  if (d.offload === false) o.offload = false;
  if (d.leaseTime !== undefined) o.leaseTime = d.leaseTime;
  if (d.dhcpHosts !== undefined) o.dhcpHosts = d.dhcpHosts;
  if (d.dns !== undefined) o.dns = d.dns;
  return o;
}
