// The API's routes: one table that the server dispatches on and the OpenAPI document is made from.
// Every handler is one engine call, so the API answers what the CLI's --json prints.
import type { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import { checkDrift, repairDrift } from '../engine/drift.js';
import type { KvmnetError } from '../model/errors.js';
import { parseConfirmTimeout } from '../model/timeout.js';
import { networkInputOf } from '../model/input.js';
import type { ForwardInput } from '../model/forward.js';
import type { PortInput } from '../model/port.js';
import {
  applyBody,
  autostartBody,
  checkSchema,
  repairSchema,
  forwardBody,
  networkBody,
  portBody,
  portPatch,
  sessionSchema,
  statsSchema,
} from './schemas.js';

export interface RouteContext {
  engine: Engine;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  dryRun: boolean;
  session: z.infer<typeof sessionSchema>;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path template: `{name}` matches one URL-decoded segment. */
  path: string;
  summary: string;
  /** The CLI command it mirrors, for the document. */
  cli?: string;
  body?: z.ZodType;
  /** Query parameters besides dryRun. */
  query?: Record<string, string>;
  /** 201 for a create (unless a dry run). */
  created?: boolean;
  /** Answer schema, where the document spells it out (others follow docs/cli.md). */
  answer?: z.ZodType;
  handler(ctx: RouteContext): Promise<unknown>;
}

const NETWORK_Q = { network: 'only this network' };
const PORT_Q = { network: 'the network of the port, when its reference is ambiguous' };

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v !== null && v !== '0' && v !== 'false';
}

function p(ctx: RouteContext, name: string): string {
  return ctx.params[name] ?? '';
}

export const routes: Route[] = [
  {
    method: 'GET',
    path: '/api/session',
    summary: 'how this request was authenticated, and the CSRF token for writes from the page',
    answer: sessionSchema,
    handler: (ctx) => Promise.resolve(ctx.session),
  },
  {
    method: 'GET',
    path: '/api/networks',
    summary: 'every network with its state',
    cli: 'kvmnet net list --json',
    handler: (ctx) => ctx.engine.list(),
  },
  {
    method: 'POST',
    path: '/api/networks',
    summary: 'define a network',
    cli: 'kvmnet net define --json',
    body: networkBody,
    created: true,
    handler: (ctx) => {
      const { name, mode, ...rest } = ctx.body as z.infer<typeof networkBody>;
      return ctx.engine.define(networkInputOf(name, { ...rest, mode: mode ?? 'nat' }), {
        dryRun: ctx.dryRun,
      });
    },
  },
  {
    method: 'GET',
    path: '/api/networks/{name}',
    summary: 'one network: definition, state, dnsmasq',
    cli: 'kvmnet net info --json',
    handler: (ctx) => ctx.engine.info(p(ctx, 'name')),
  },
  {
    method: 'DELETE',
    path: '/api/networks/{name}',
    summary: 'undefine a network (force: stop it first and drop its ports and forwards)',
    cli: 'kvmnet net undefine --json',
    query: { force: 'stop a running network and drop its ports and forwards first' },
    handler: (ctx) =>
      ctx.engine.undefine(p(ctx, 'name'), { force: flag(ctx.query, 'force'), dryRun: ctx.dryRun }),
  },
  {
    method: 'POST',
    path: '/api/networks/{name}/start',
    summary: 'start a network (or repair a drifted one)',
    cli: 'kvmnet net start --json',
    query: { confirmTimeout: 'bridged networks: seconds the gateway may take to answer (1-600, default 20)' },
    handler: (ctx) => {
      const raw = ctx.query.get('confirmTimeout');
      return ctx.engine.start(p(ctx, 'name'), {
        dryRun: ctx.dryRun,
        ...(raw === null ? {} : { confirmTimeout: parseConfirmTimeout(raw) }),
      });
    },
  },
  {
    method: 'POST',
    path: '/api/networks/{name}/stop',
    summary: 'stop a network (its definition is kept)',
    cli: 'kvmnet net stop --json',
    handler: (ctx) => ctx.engine.stop(p(ctx, 'name'), { dryRun: ctx.dryRun }),
  },
  {
    method: 'PUT',
    path: '/api/networks/{name}/autostart',
    summary: 'start the network at boot (`kvmnet up`) or not',
    cli: 'kvmnet net autostart --json',
    body: autostartBody,
    handler: (ctx) =>
      ctx.engine.setAutostart(p(ctx, 'name'), (ctx.body as z.infer<typeof autostartBody>).enabled, {
        dryRun: ctx.dryRun,
      }),
  },
  {
    method: 'POST',
    path: '/api/up',
    summary: 'define the default network (first run) and start every autostart network',
    cli: 'kvmnet up --json',
    handler: (ctx) => ctx.engine.up({ dryRun: ctx.dryRun }),
  },
  {
    method: 'POST',
    path: '/api/apply',
    summary:
      'make the stored definitions equal to the body (networks, forwards); running networks follow, networks left out are stopped and undefined',
    cli: 'kvmnet apply -f FILE --json',
    body: applyBody,
    handler: async (ctx) => {
      const { parseDefinitionsFile } = await import('../model/definitions.js');
      const file = parseDefinitionsFile(JSON.stringify(ctx.body), 'body');
      return ctx.engine.apply(file.networks, file.forwards, { dryRun: ctx.dryRun });
    },
  },
  {
    method: 'POST',
    path: '/api/down',
    summary: 'stop every running network',
    cli: 'kvmnet down --json',
    handler: (ctx) => ctx.engine.down({ dryRun: ctx.dryRun }),
  },
  {
    method: 'GET',
    path: '/api/ports',
    summary: 'ports: tap, VM, MAC, reservation, QEMU arguments',
    cli: 'kvmnet port list --json',
    query: NETWORK_Q,
    handler: (ctx) => ctx.engine.portList(ctx.query.get('network') ?? undefined),
  },
  {
    method: 'POST',
    path: '/api/ports',
    summary: 'add a port (a tap for a VM)',
    cli: 'kvmnet port add --json',
    body: portBody,
    created: true,
    handler: (ctx) => {
      const b = ctx.body as z.infer<typeof portBody>;
      const input: PortInput = { network: b.network, vm: b.vm };
      if (b.mac !== undefined) input.mac = b.mac;
      if (b.ip !== undefined) input.ip = b.ip;
      if (b.model !== undefined) input.model = b.model;
      if (b.spoofCheck !== undefined) input.spoofCheck = b.spoofCheck;
      if (b.isolated !== undefined) input.isolated = b.isolated;
      // A port whose tap libvirt makes: the answer names the network's bridge too, which its
      // domain <interface> needs (kvmnet libvirt interface).
      if (b.tap === 'libvirt') return ctx.engine.libvirtInterface(input, { dryRun: ctx.dryRun });
      return ctx.engine.portAdd(input, { dryRun: ctx.dryRun });
    },
  },
  {
    method: 'PATCH',
    path: '/api/ports/{ref}',
    summary: "pull or plug a port's cable, change its reservation, anti-spoofing or isolation",
    cli: 'kvmnet port link / kvmnet port set --json',
    query: PORT_Q,
    body: portPatch,
    handler: async (ctx) => {
      const b = ctx.body as z.infer<typeof portPatch>;
      const net = ctx.query.get('network') ?? undefined;
      const ref = p(ctx, 'ref');
      type R = Awaited<ReturnType<Engine['portSet']>>;
      const merge = (a: R | undefined, b: R | undefined): R | undefined =>
        a === undefined ? b : b === undefined ? a : { ...b, plans: [...a.plans, ...b.plans] };
      const flags = {
        ...(b.spoofCheck === undefined ? {} : { spoofCheck: b.spoofCheck }),
        ...(b.isolated === undefined ? {} : { isolated: b.isolated }),
      };
      const setting = b.ip !== undefined || b.spoofCheck !== undefined || b.isolated !== undefined;
      // The reservation is checked before the link changes: a bad address changes nothing.
      const ipPlan = setting
        ? await ctx.engine.portSet(ref, net, b.ip, { dryRun: true, ...flags })
        : undefined;
      const linked =
        b.link === undefined
          ? undefined
          : await ctx.engine.portLink(ref, net, b.link, { dryRun: ctx.dryRun });
      if (ctx.dryRun || !setting) return merge(linked, ipPlan);
      return merge(linked, await ctx.engine.portSet(ref, net, b.ip, { dryRun: false, ...flags }));
    },
  },
  {
    method: 'DELETE',
    path: '/api/ports/{ref}',
    summary: 'remove a port and its tap',
    cli: 'kvmnet port del --json',
    query: PORT_Q,
    handler: (ctx) =>
      ctx.engine.portDel(p(ctx, 'ref'), ctx.query.get('network') ?? undefined, { dryRun: ctx.dryRun }),
  },
  {
    method: 'GET',
    path: '/api/forwards',
    summary: 'port forwards with the address each reaches now',
    cli: 'kvmnet forward list --json',
    query: NETWORK_Q,
    handler: (ctx) => ctx.engine.forwardList(ctx.query.get('network') ?? undefined),
  },
  {
    method: 'POST',
    path: '/api/forwards',
    summary: 'add a port forward',
    cli: 'kvmnet forward add --json',
    body: forwardBody,
    created: true,
    handler: (ctx) => {
      const b = ctx.body as z.infer<typeof forwardBody>;
      const input: ForwardInput = {
        network: b.network,
        proto: b.proto,
        ports: String(b.ports),
        target: b.target,
      };
      if (b.hostIp !== undefined) input.hostIp = b.hostIp;
      if (b.description !== undefined) input.description = b.description;
      return ctx.engine.forwardAdd(input, { dryRun: ctx.dryRun });
    },
  },
  {
    method: 'DELETE',
    path: '/api/forwards/{network}/{proto}/{ports}',
    summary: 'remove a port forward',
    cli: 'kvmnet forward del --json',
    query: { hostIp: 'the host address of a forward added with one' },
    handler: (ctx) => {
      const hostIp = ctx.query.get('hostIp') ?? undefined;
      return ctx.engine.forwardDel(
        p(ctx, 'network'),
        { proto: p(ctx, 'proto'), ports: p(ctx, 'ports'), ...(hostIp === undefined ? {} : { hostIp }) },
        { dryRun: ctx.dryRun },
      );
    },
  },
  {
    method: 'GET',
    path: '/api/leases',
    summary: 'DHCP leases with the VM and port that own each MAC',
    cli: 'kvmnet leases --json',
    query: NETWORK_Q,
    handler: (ctx) => ctx.engine.leases(ctx.query.get('network') ?? undefined),
  },
  {
    method: 'GET',
    path: '/api/show',
    summary: 'every network with its bridge, ports, VMs, addresses, link state and forwards',
    cli: 'kvmnet show --json',
    handler: (ctx) => ctx.engine.show(),
  },
  {
    method: 'GET',
    path: '/api/check',
    summary: 'every difference between the running networks and the host',
    cli: 'kvmnet check --json',
    query: { network: 'only this network (repeat for several)' },
    answer: checkSchema,
    handler: (ctx) => checkDrift(ctx.engine, ctx.query.getAll('network')),
  },
  {
    method: 'POST',
    path: '/api/repair',
    summary: 'restore what /api/check lists, touching nothing that is right',
    cli: 'kvmnet repair --json',
    query: { network: 'only this network (repeat for several)' },
    answer: repairSchema,
    handler: (ctx) => repairDrift(ctx.engine, ctx.query.getAll('network'), { dryRun: ctx.dryRun }),
  },
  {
    method: 'GET',
    path: '/api/stats',
    summary: "the kernel's counters of every kvmnet bridge and port",
    answer: statsSchema,
    handler: (ctx) => linkStats(ctx.engine),
  },
];

/** Counters of the bridges and taps kvmnet manages (a page draws rates from two of these). */
export async function linkStats(engine: Engine): Promise<z.infer<typeof statsSchema>> {
  const [show, stats] = await Promise.all([engine.show(), engine.host.linkStats()]);
  const names = new Set(
    show.flatMap((n) => [n.bridge, ...n.ports.map((x) => x.port).filter((x) => x !== '')]),
  );
  const links: z.infer<typeof statsSchema>['links'] = {};
  for (const [name, s] of stats) if (names.has(name)) links[name] = s;
  return { time: Date.now(), links };
}

/** The HTTP status of an engine error: its kind, refined by its code. */
export function statusOf(e: KvmnetError): number {
  if (e.code.startsWith('unknown-') && e.code !== 'unknown-vm') return 404;
  if (e.code === 'locked') return 503;
  if (CONFLICTS.has(e.code)) return 409;
  return e.kind === 'input' ? 400 : 500;
}

const CONFLICTS = new Set([
  'already-defined',
  'duplicate-network',
  'bridge-taken',
  'forward-conflict',
  'forward-depends',
  'mac-taken',
  'ip-taken',
  'subnet-overlap',
  'uplink-taken',
  'network-has-ports',
  'network-running',
]);

export interface Match {
  route: Route;
  params: Record<string, string>;
}

/**
 * Finds the route of a request. Segments are split before decoding, so a port id travels as one
 * segment (`kvm1%2Fnet0`). Returns the methods the path has when none matches the method.
 */
export function matchRoute(method: string, pathname: string): Match | { allow: string[] } | undefined {
  const segs = pathname.split('/');
  const allow: string[] = [];
  for (const route of routes) {
    const tpl = route.path.split('/');
    if (tpl.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < tpl.length && ok; i++) {
      const t = tpl[i] ?? '';
      const s = segs[i] ?? '';
      if (t.startsWith('{')) {
        try {
          params[t.slice(1, -1)] = decodeURIComponent(s);
        } catch {
          ok = false;
        }
        ok &&= s !== '';
      } else ok = t === s;
    }
    if (!ok) continue;
    if (route.method === method) return { route, params };
    allow.push(route.method);
  }
  return allow.length ? { allow } : undefined;
}
