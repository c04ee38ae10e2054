// The zod schema of one network in a definitions file (kvmnet apply -f / export) and in the API's
// bodies. Apart from network.ts so that what only checks and plans networks (net start, net list,
// port add...) never loads zod: only the YAML file and the daemon import this.
import { z } from 'zod';
import { NETWORK_MODES } from './network.js';

const dnsFileSchema = z
  .object({
    enable: z.boolean().optional(),
    forwardPlainNames: z.boolean().optional(),
    hosts: z.array(z.object({ ip: z.string(), hostnames: z.array(z.string()) }).strict()).optional(),
    forwarders: z
      .array(z.object({ addr: z.string().optional(), domain: z.string().optional() }).strict())
      .optional(),
    srv: z
      .array(
        z
          .object({
            service: z.string(),
            protocol: z.enum(['tcp', 'udp']),
            domain: z.string().optional(),
            target: z.string().optional(),
            port: z.number().int().optional(),
            priority: z.number().int().optional(),
            weight: z.number().int().optional(),
          })
          .strict(),
      )
      .optional(),
    txt: z.array(z.object({ name: z.string(), value: z.string() }).strict()).optional(),
  })
  .strict();

/** The schema of one network in a YAML file: unknown keys and wrong types are refused. */
export const networkFileSchema = z
  .object({
    mode: z.enum(NETWORK_MODES),
    bridge: z.string().optional(),
    mac: z.string().optional(),
    subnet: z.string().optional(),
    uplink: z.string().optional(),
    gateway: z.string().optional(),
    dhcp: z
      .union([z.object({ start: z.string(), end: z.string() }).strict(), z.literal(false), z.null()])
      .optional(),
    domain: z.string().optional(),
    autostart: z.boolean().optional(),
    uuid: z.string().optional(),
    mtu: z.number().int().optional(),
    stp: z.boolean().optional(),
    forwardDelay: z.number().int().optional(),
    leaseTime: z.number().int().optional(),
    dhcpHosts: z
      .array(
        z
          .object({
            mac: z.string().optional(),
            name: z.string().optional(),
            ip: z.string(),
            leaseTime: z.number().int().optional(),
          })
          .strict(),
      )
      .optional(),
    dns: dnsFileSchema.optional(),
    forwardDev: z.string().optional(),
    peers: z.array(z.string()).optional(),
    offload: z.boolean().optional(),
  })
  .strict();
