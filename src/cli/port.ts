// `kvmnet port ...`, `kvmnet leases`, `kvmnet show`: VM ports, DHCP leases and the whole picture.
import type { Command } from 'commander';
import type { PortView, ShowNetwork } from '../engine/engine.js';
import { inputError } from '../model/errors.js';
import { tapText, type PortInput } from '../model/port.js';
import type { CliContext } from './context.js';
import { json, renderResult, table } from './output.js';
import { portDelOutput } from './finish.js';

function portLine(p: PortView): string {
  if (p.tap === 'libvirt')
    return `${tapText(p)}  ${p.id}  ${p.mac}${p.ip ? `  ${p.ip}` : ''}  (libvirt port: libvirt makes its tap)\n`;
  const flags = `${p.spoofCheck ? '' : '  spoof-check off'}${p.isolated ? '  isolated' : ''}`;
  return `${p.name}  ${p.vm}  ${p.mac}  tap ${p.tapMac}${p.ip ? `  ${p.ip}` : ''}${flags}\nqemu: ${p.qemu.join(' ')}\n`;
}

const REF_HELP =
  'a VM name (if it has one port, or one on --network), VM/netN, or the tap name (vnetN; a libvirt port has one while its domain runs)';

export function registerPort(program: Command, ctx: CliContext): void {
  const port = program
    .command('port')
    .summary('VM ports: taps that know their VM')
    .description(
      'Ports are persistent tap devices (vnetN) that kvmnet creates and QEMU opens by name. Each belongs to a VM; ' +
        "the tap's MAC is the guest's with the first byte set to fe. A VM's ports are VM/net0, VM/net1, ... across networks.",
    );

  ctx
    .handsOver(port.command('add'))
    .argument('<network>', 'network name')
    .requiredOption('--vm <name>', "the VM (a DNS label: it becomes the guest's name in the network's DNS)")
    .option('--mac <mac>', "the guest's MAC (default: a random unique 52:54:00:xx:xx:xx)")
    .option('--ip <ip>', 'static DHCP reservation and DNS name on the network')
    .option('--model <device>', 'QEMU NIC model for the printed command line', 'virtio-net-pci')
    .option(
      '--no-spoof-check',
      'let the guest send from any MAC and IP (default: only its own MAC and, once it has a reservation or lease, its own IPv4 address; ARP likewise)',
    )
    .option(
      '--isolated',
      'bridge port isolation: the port reaches the gateway and uplink but no other isolated port',
      false,
    )
    .option('--dry-run', 'print the plan; change nothing', false)
    .description(
      'Add a port: create its tap (plugged into the bridge if the network runs) and, with --ip, a reservation that ' +
        'dnsmasq serves at once (hosts file + SIGHUP). Prints the QEMU arguments that use it.',
    )
    .addHelpText(
      'after',
      `
Rules: the guest MAC must be unicast, must not start with fe and must not be used by another port. The
reservation must be a host address of the subnet other than the gateway, not reserved by another port,
inside or outside the DHCP pool, on a network that has DHCP.

Anti-spoofing (on unless --no-spoof-check): frames from the tap must carry the guest's MAC; ARP must
name the guest's MAC and address as sender; IPv4 must come from the reservation or, without one, the
DHCP lease (DHCP requests from 0.0.0.0 always pass); no frame may claim the gateway's address or
another port's reservation; IPv6 only from link-local addresses (any on a bridged network); other
ethertypes are dropped. See \`kvmnet port info\`.

The same port again (same network, --vm, --mac, --ip, --model and flags as a stored port) is not an error:
nothing is recorded, the host is brought in line with the stored port and the command exits 0. A re-run
after an interrupted \`port add\` therefore finishes it. Without --mac, every run adds a new port.

Example:
  kvmnet port add default --vm kvm1 --mac 52:54:00:60:e4:6a --ip 192.168.122.50
  vnet0  kvm1  52:54:00:60:e4:6a  tap fe:54:00:60:e4:6a  192.168.122.50
  qemu: -netdev tap,id=net0,ifname=vnet0,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=52:54:00:60:e4:6a`,
    )
    .action(
      async (
        network: string,
        o: {
          vm: string;
          mac?: string;
          ip?: string;
          model: string;
          spoofCheck: boolean;
          isolated: boolean;
          dryRun: boolean;
        },
      ) => {
        const input: PortInput = { network, vm: o.vm, model: o.model };
        if (!o.spoofCheck) input.spoofCheck = false;
        if (o.isolated) input.isolated = true;
        if (o.mac !== undefined) input.mac = o.mac;
        if (o.ip !== undefined) input.ip = o.ip;
        const r = await ctx.delegable().portAdd(input, { dryRun: o.dryRun });
        if (ctx.json()) return ctx.print(json(r));
        ctx.print((o.dryRun ? renderResult(r) : '') + portLine(r.port));
      },
    );

  port
    .command('list')
    .argument('[network]', 'only this network')
    .description('List ports with their VM, MACs, reservation, link state, anti-spoofing and isolation.')
    .action(async (network?: string) => {
      const ports = await ctx.engine().portList(network);
      if (ctx.json()) return ctx.print(json(ports));
      ctx.print(
        table(
          ['PORT', 'ID', 'VM', 'NETWORK', 'MAC', 'TAP MAC', 'IP', 'LINK', 'SPOOF-CHECK', 'ISOLATED'],
          ports.map((p) => [
            tapText(p),
            p.id,
            p.vm,
            p.network,
            p.mac,
            p.tapMac,
            p.ip ?? '-',
            p.link,
            p.spoofCheck ? 'on' : 'off',
            p.isolated ? 'yes' : 'no',
          ]),
        ),
      );
    });

  port
    .command('info')
    .argument('<port>', REF_HELP)
    .option('--network <name>', "pick the VM's port on this network")
    .description(
      'One port: its tap, MACs, reservation and lease, and what anti-spoofing lets out of its tap now ' +
        '(the MAC, and the IPv4 source: the reservation, else the lease, else any until it has one).',
    )
    .action(async (ref: string, o: { network?: string }) => {
      const p = await ctx.engine().portInfo(ref, o.network);
      if (ctx.json()) return ctx.print(json(p));
      const src = p.allowedSource;
      const rows: Array<[string, string]> = [
        ['port', `${tapText(p)} (${p.id})`],
        ['network', `${p.network}${p.running ? '' : ' (not running)'}`],
        ['mac', `${p.mac} (tap ${p.tapMac})`],
        ['reservation', p.ip ?? '-'],
        ['lease', p.lease ?? '-'],
        ['link', p.link],
        ['spoof-check', p.spoofCheck ? 'on' : 'off'],
        [
          'allowed source',
          src === null ? 'anything' : `mac ${src.mac}, ipv4 ${src.ip ?? 'any (no reservation or lease yet)'}`,
        ],
        ['isolated', p.isolated ? 'yes' : 'no'],
      ];
      ctx.print(rows.map(([k, v]) => `${`${k}:`.padEnd(16)}${v}\n`).join(''));
    });

  port
    .command('link')
    .argument('<port>', REF_HELP)
    .argument('<state>', 'down (pull the cable) or up (plug it back)')
    .option('--network <name>', "pick the VM's port on this network")
    .option('--dry-run', 'print the plan; change nothing', false)
    .description("Pull or plug a port's cable: the tap goes down or up; QEMU keeps running.")
    .action(async (ref: string, state: string, o: { network?: string; dryRun: boolean }) => {
      if (state !== 'up' && state !== 'down') {
        throw inputError(
          'invalid-link-state',
          `link state "${state}" is not up or down`,
          `kvmnet port link ${ref} down|up`,
        );
      }
      const r = await ctx.engine().portLink(ref, o.network, state, { dryRun: o.dryRun });
      ctx.print(
        ctx.json() ? json(r) : o.dryRun ? renderResult(r) : `${r.port.name} (${r.port.id}): link ${state}\n`,
      );
    });

  port
    .command('set')
    .argument('<port>', REF_HELP)
    .option('--ip <ip>', 'reserve this address for the port (replaces its reservation)')
    .option('--no-ip', 'drop the reservation')
    .option('--spoof-check', 'turn anti-spoofing on (the default for new ports)')
    .option('--no-spoof-check', 'turn anti-spoofing off: the guest may send from any MAC and address')
    .option('--isolated', 'turn bridge port isolation on')
    .option('--no-isolated', 'turn bridge port isolation off')
    .option('--network <name>', "pick the VM's port on this network")
    .option('--dry-run', 'print the plan; change nothing', false)
    .description(
      "Change a port's reservation (dnsmasq re-reads it at once and forwards to the VM follow it), its " +
        'anti-spoofing or its isolation. Options left out stay as they are.',
    )
    .action(
      async (
        ref: string,
        o: {
          ip?: string | boolean;
          spoofCheck?: boolean;
          isolated?: boolean;
          network?: string;
          dryRun: boolean;
        },
      ) => {
        if (o.ip === true || (o.ip === undefined && o.spoofCheck === undefined && o.isolated === undefined)) {
          throw inputError(
            'missing-option',
            'port set needs --ip ADDRESS, --no-ip, --[no-]spoof-check or --[no-]isolated',
            `kvmnet port set ${ref} --ip 192.168.122.50`,
          );
        }
        const r = await ctx.engine().portSet(ref, o.network, o.ip === false ? null : o.ip, {
          dryRun: o.dryRun,
          ...(o.spoofCheck === undefined ? {} : { spoofCheck: o.spoofCheck }),
          ...(o.isolated === undefined ? {} : { isolated: o.isolated }),
        });
        if (ctx.json()) return ctx.print(json(r));
        ctx.print((o.dryRun ? renderResult(r) : '') + portLine(r.port));
      },
    );

  ctx
    .handsOver(port.command('del'))
    .argument('<port>', REF_HELP)
    .option('--network <name>', "pick the VM's port on this network")
    .option('--dry-run', 'print the plan; change nothing', false)
    .description('Remove a port, its tap and its reservation. A guest still using the tap loses its cable.')
    .action(async (ref: string, o: { network?: string; dryRun: boolean }) => {
      const r = await ctx.delegable().portDel(ref, o.network, { dryRun: o.dryRun });
      ctx.print(portDelOutput(r, ctx.json(), o.dryRun).stdout);
    });

  program
    .command('leases')
    .argument('[network]', 'only this network')
    .summary('DHCP leases with the VM that owns each MAC')
    .description(
      "DHCP leases from each network's dnsmasq lease file: MAC, IP, hostname, the VM and port owning the MAC, expiry.",
    )
    .action(async (network?: string) => {
      const leases = await ctx.engine().leases(network);
      if (ctx.json()) return ctx.print(json(leases));
      if (network !== undefined && (await ctx.engine().info(network)).mode === 'bridge') {
        return ctx.print(
          `network ${network} is bridged: its guests' leases are held by the LAN's DHCP server, not kvmnet (\`kvmnet show\` lists the addresses the bridge has seen)\n`,
        );
      }
      ctx.print(
        table(
          ['NETWORK', 'MAC', 'IP', 'HOSTNAME', 'VM', 'PORT', 'EXPIRES'],
          leases.map((l) => [
            l.network,
            l.mac,
            l.ip,
            l.hostname ?? '-',
            l.vm ?? '-',
            l.port ?? '-',
            l.expiry ?? 'never',
          ]),
        ),
      );
    });

  program
    .command('show')
    .summary('every network with its bridge and ports (like brctl show, with VM names)')
    .description(
      'Every network: its bridge, mode, subnet and state, then each port: tap, VM, guest MAC, IP (reservation or lease) ' +
        'and link state (up/down as set with `port link`; "no guest" when nothing holds the tap open).',
    )
    .action(async () => {
      const nets = await ctx.engine().show();
      if (ctx.json()) return ctx.print(json(nets));
      ctx.print(renderShow(nets));
    });
}

export function renderShow(nets: ShowNetwork[]): string {
  if (nets.length === 0) return 'no networks defined (kvmnet up defines the default one)\n';
  return nets
    .map((n) => {
      const where =
        n.subnet === null ? `on the LAN via ${n.uplink ?? '?'}` : `${n.subnet} via ${n.gateway ?? '?'}`;
      const head = `${n.network}  bridge ${n.bridge}  ${n.mode} ${where}  ${n.state}\n`;
      const fw = n.forwards.length
        ? '  forwards:\n' +
          n.forwards.map((f) => `    ${f.summary}${f.description ? `  # ${f.description}` : ''}\n`).join('')
        : '';
      if (n.ports.length === 0) return head + '  (no ports)\n' + fw;
      const rows = n.ports.map((p) => [
        p.port || '-',
        p.id,
        p.mac,
        p.ip ?? '-',
        p.tap === 'libvirt' && p.port === ''
          ? 'libvirt (domain not running)'
          : p.link === 'down'
            ? 'down'
            : !p.plugged
              ? 'up (unplugged)'
              : p.carrier
                ? 'up'
                : 'up (no guest)',
      ]);
      return (
        head +
        table(['PORT', 'VM', 'MAC', 'IP', 'LINK'], rows)
          .split('\n')
          .map((l) => (l ? `  ${l}` : l))
          .join('\n') +
        fw
      );
    })
    .join('\n');
}
