// `kvmnet forward ...`: port forwards (DNAT) from host addresses to guests.
import type { Command } from 'commander';
import type { ForwardView } from '../engine/engine.js';
import type { ForwardInput } from '../model/forward.js';
import type { CliContext } from './context.js';
import { json, renderResult, table } from './output.js';

export function registerForward(program: Command, ctx: CliContext): void {
  const fwd = program
    .command('forward')
    .summary("port forwards: reach a guest's service from the LAN, the host and other guests")
    .description(
      'Port forwards (DNAT) from the host to a guest of a nat or routed network, kept in nft maps: one lookup per ' +
        'packet whatever their number, and adding or removing one touches one map element.',
    );

  fwd
    .command('add')
    .argument('<network>', 'the network of the target guest')
    .argument('<proto>', 'tcp or udp')
    .argument('<ports>', 'host port or range, e.g. 8080 or 10000-10010')
    .argument(
      '<target>',
      'VM:PORT(S) or ADDRESS:PORT(S), e.g. kvm1:80, 192.168.122.60:53, kvm2:20000-20010 (without ports: the same ports)',
    )
    .option(
      '--host-ip <ip>',
      'listen only on this host address (default: every host address but kvmnet gateways and 127.0.0.0/8)',
    )
    .option('--description <text>', 'a note shown by `forward list`')
    .option('--dry-run', 'print the plan; change nothing', false)
    .addHelpText(
      'after',
      `
The target is a VM name (the forward follows that VM's reserved address on the network: see
\`kvmnet port add --ip\` and \`kvmnet port set --ip\`) or an address inside the network's subnet.
It works from the LAN (to the host's address), from the host itself (to its own LAN address; not to
127.0.0.1, which kvmnet never forwards), and from guests of the same network (hairpin: the target
then sees the gateway as the source, so replies come back through the host).

Refused: the same host address/protocol/port twice or overlapping ranges; ranges of different
lengths; ports outside 1-65535; more than 4096 ports in one forward; a target outside the subnet;
an unknown network or VM, or a VM without a reserved address; an isolated network.
The same forward again (same host address, protocol, ports, target and description) is not an
error: nothing is recorded, the network's firewall is reconciled and the command exits 0.

Examples:
  kvmnet forward add default tcp 8080 kvm1:80 --description web
  kvmnet forward add default udp 5353 192.168.122.60:53 --host-ip 192.168.100.239
  kvmnet forward add default tcp 10000-10010 kvm2:20000-20010`,
    )
    .action(
      async (
        network: string,
        proto: string,
        ports: string,
        target: string,
        o: { hostIp?: string; description?: string; dryRun: boolean },
      ) => {
        const input: ForwardInput = { network, proto, ports, target };
        if (o.hostIp !== undefined) input.hostIp = o.hostIp;
        if (o.description !== undefined) input.description = o.description;
        const r = await ctx.engine().forwardAdd(input, { dryRun: o.dryRun });
        if (ctx.json()) return ctx.print(json(r));
        ctx.print((o.dryRun ? renderResult(r) : '') + `${r.forward.id}  ${r.forward.summary}\n`);
      },
    );

  fwd
    .command('list')
    .argument('[network]', 'only this network')
    .description(
      'List port forwards: id, network, protocol, host address and ports, target and its current address.',
    )
    .action(async (network?: string) => {
      const list = await ctx.engine().forwardList(network);
      if (ctx.json()) return ctx.print(json(list));
      ctx.print(renderForwards(list, true));
    });

  fwd
    .command('del')
    .argument('<network>', 'network name')
    .argument('<proto|id>', 'tcp or udp, or the id `forward list` shows (e.g. tcp/8080)')
    .argument('[ports]', 'host port or range (with a protocol)')
    .option('--host-ip <ip>', 'the host address the forward listens on, if it has one')
    .option('--dry-run', 'print the plan; change nothing', false)
    .description('Remove a port forward; other forwards and their connections are not disturbed.')
    .action(
      async (
        network: string,
        protoOrId: string,
        ports: string | undefined,
        o: { hostIp?: string; dryRun: boolean },
      ) => {
        const ref =
          ports === undefined
            ? { id: protoOrId }
            : { proto: protoOrId, ports, ...(o.hostIp === undefined ? {} : { hostIp: o.hostIp }) };
        const r = await ctx.engine().forwardDel(network, ref, { dryRun: o.dryRun });
        ctx.print(ctx.json() ? json(r) : o.dryRun ? renderResult(r) : `${r.forward.id}: removed\n`);
      },
    );
}

export function renderForwards(list: ForwardView[], withNetwork: boolean): string {
  return table(
    [...(withNetwork ? ['NETWORK'] : []), 'ID', 'PROTO', 'HOST', 'TARGET', 'ADDRESS', 'DESCRIPTION'],
    list.map((f) => {
      const tp =
        f.targetPort === f.targetPort + f.portEnd - f.port
          ? `${f.targetPort}`
          : `${f.targetPort}-${f.targetPort + f.portEnd - f.port}`;
      const hp = f.port === f.portEnd ? `${f.port}` : `${f.port}-${f.portEnd}`;
      return [
        ...(withNetwork ? [f.network] : []),
        f.id,
        f.proto,
        `${f.hostIp ?? '*'}:${hp}`,
        `${f.target}:${tp}`,
        f.targetIp ? `${f.targetIp}:${tp}` : '(unresolved)',
        f.description ?? '',
      ];
    }),
  );
}
