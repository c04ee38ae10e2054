// The request bodies of the HTTP API, as zod schemas: they validate every request and they are
// what the OpenAPI document is generated from (one source, so the document cannot drift).
// Structure is checked here (types, unknown keys); meaning (addresses, names, conflicts) is checked
// by the same model functions the CLI goes through.
import { z } from 'zod';
import { DRIFT_KINDS, type DriftKind } from '../engine/drift.js';
import { PROTOCOLS } from '../model/forward.js';
import { NETWORK_MODES } from '../model/network.js';
import { networkFileSchema } from '../model/network-schema.js';
import { fileSchema } from '../model/definitions.js';

export const networkBody = networkFileSchema
  .extend({
    name: z.string().describe('the network name: 1-32 characters from A-Z a-z 0-9 _ . -'),
    mode: z.enum(NETWORK_MODES).optional().describe('default nat'),
  })
  .describe('One network as in the definitions file (docs/cli.md), plus its name.');

export const portBody = z
  .object({
    network: z.string().describe('the network the port joins'),
    vm: z.string().describe("the VM's name (a DNS label: the guest's host name)"),
    mac: z.string().optional().describe("the guest's MAC (default: a free 52:54:00 address)"),
    ip: z.string().optional().describe('a reserved address inside the subnet'),
    model: z.string().optional().describe('the QEMU NIC model (default virtio-net-pci)'),
    spoofCheck: z
      .boolean()
      .optional()
      .describe("anti-spoofing: only the guest's own MAC and address leave the tap (default true)"),
    isolated: z
      .boolean()
      .optional()
      .describe(
        'bridge port isolation: reaches the gateway and uplink, not other isolated ports (default false)',
      ),
    tap: z
      .enum(['kvmnet', 'libvirt'])
      .optional()
      .describe(
        'who makes the tap: kvmnet, now (default), or libvirt when the domain starts (kvmnet records ' +
          'the port and serves its reservation; `kvmnet libvirt interface`)',
      ),
  })
  .strict()
  .describe('A new port: its tap is made now and plugged into the bridge when the network runs.');

export const portPatch = z
  .object({
    link: z.enum(['up', 'down']).optional().describe("plug (up) or pull (down) the port's cable"),
    ip: z.union([z.string(), z.null()]).optional().describe('a new reservation, or null to drop it'),
    spoofCheck: z.boolean().optional().describe('turn anti-spoofing on or off'),
    isolated: z.boolean().optional().describe('turn bridge port isolation on or off'),
  })
  .strict()
  .refine(
    (p) =>
      p.link !== undefined || p.ip !== undefined || p.spoofCheck !== undefined || p.isolated !== undefined,
    { message: 'give link, ip, spoofCheck or isolated' },
  )
  .describe('Changes to a port: its link, its reservation, its anti-spoofing, its isolation.');

export const forwardBody = z
  .object({
    network: z.string().describe('the network of the target guest'),
    proto: z.enum(PROTOCOLS),
    ports: z.union([z.number().int(), z.string()]).describe('host port or range: 8080 or "10000-10010"'),
    target: z.string().describe('VM:PORT(S) or ADDRESS:PORT(S), e.g. kvm1:80'),
    hostIp: z.string().optional().describe('listen only on this host address'),
    description: z.string().optional(),
  })
  .strict()
  .describe('A port forward (DNAT) from the host to a guest.');

export const applyBody = fileSchema
  .extend({
    networks: z
      .record(z.string(), networkFileSchema)
      .describe('every network by name, as in the definitions file; networks left out are undefined'),
  })
  .describe(
    'The definitions file (docs/cli.md, "The definitions file") as JSON. `networks` is required (an empty object undefines every network without ports).',
  );

export const autostartBody = z
  .object({ enabled: z.boolean().describe('start the network with `kvmnet up` (at boot)') })
  .strict();

export const errorSchema = z
  .object({
    code: z.string().describe('a stable code, e.g. "unknown-network"'),
    message: z.string(),
    hint: z.string().optional().describe('what to do about it'),
    field: z.string().optional().describe('the body key at fault, as a dotted path'),
    kind: z
      .enum(['input', 'failure'])
      .describe(
        'input: refused, nothing changed (the CLI exits 2); failure: on the host, rolled back (exit 1)',
      ),
  })
  .describe('Every error the API answers: the CLI message and hint.');

export const sessionSchema = z.object({
  version: z.string(),
  auth: z.enum(['socket', 'bearer', 'cookie']),
  csrf: z.string().describe('send as X-Kvmnet-Csrf on writes authenticated by the cookie'),
});

export const statsSchema = z.object({
  time: z.number().describe('milliseconds since the epoch'),
  links: z.record(
    z.string(),
    z.object({ rxBytes: z.number(), txBytes: z.number(), rxPackets: z.number(), txPackets: z.number() }),
  ),
});

export const findingSchema = z.object({
  network: z.string(),
  kind: z
    .enum(DRIFT_KINDS as [DriftKind, ...DriftKind[]])
    .describe('what differs (docs/cli.md, kvmnet check)'),
  object: z.string().describe('the host object: a link, table, chain, map element, file or sysctl'),
  expected: z.string(),
  actual: z.string(),
  fix: z.string().describe('what repair does about it'),
});

export const checkSchema = z.object({
  networks: z.array(z.string()).describe('the running networks checked'),
  findings: z.array(findingSchema),
});

export const repairSchema = checkSchema.extend({
  dryRun: z.boolean(),
  plans: z.array(z.unknown()).describe('the steps run (or, dry run, planned), per network'),
  remaining: z.array(findingSchema).describe('what check finds after the repair'),
  errors: z.array(z.string()).describe('networks whose repair failed (and was rolled back)'),
});
