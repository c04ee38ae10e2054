// `kvmnet net ...`: define, list, inspect, start, stop, undefine and autostart networks.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Engine } from '../engine/engine.js';
import { inputError, KvmnetError } from '../model/errors.js';
import { PERSIST_FORMATS, type PersistFormat } from '../render/persist-formats.js';

// The XML and YAML libraries load only for the commands that use them (the daemon stays small).
const libvirtXml = () => import('../model/libvirt.js');
const definitionsFile = () => import('../model/definitions.js');
import type { NetworkInput } from '../model/network.js';
import { json, renderResult, table } from './output.js';
import type { CliContext } from './context.js';
import type { Delegable } from './daemon.js';
import { resultOutput } from './finish.js';
import { parseConfirmTimeout } from '../model/timeout.js';

export function registerNet(program: Command, ctx: CliContext): void {
  const net = program
    .command('net')
    .summary('define, start, stop and inspect networks')
    .description('Define, start, stop and inspect kvmnet networks.');

  net
    .command('list')
    .description('List the defined networks and whether they run.')
    .action(async () => {
      const list = await ctx.engine().list();
      if (ctx.json()) return ctx.print(json(list));
      ctx.print(
        table(
          ['NAME', 'MODE', 'BRIDGE', 'SUBNET', 'STATE', 'AUTOSTART'],
          list.map((n) => [
            n.name,
            n.mode,
            n.bridge,
            n.subnet ?? `LAN via ${n.uplink ?? '?'}`,
            n.state,
            n.autostart ? 'yes' : 'no',
          ]),
        ),
      );
    });

  net
    .command('info')
    .argument('<name>', 'network name')
    .description("Show one network's definition and run state.")
    .action(async (name: string) => {
      const i = await ctx.engine().info(name);
      if (ctx.json()) return ctx.print(json(i));
      const rows: Array<[string, string]> = [
        ['Name', i.name],
        ['Mode', i.mode],
        ['State', i.state],
        ['Autostart', i.autostart ? 'yes' : 'no'],
        ['Bridge', `${i.bridge} (${i.mac})`],
        ['Subnet', i.subnet ?? "- (the LAN's)"],
        ['Gateway', i.gateway ?? '-'],
        ...(i.uplink ? ([['Uplink', i.uplink]] as Array<[string, string]>) : []),
        ...(i.mode === 'nat'
          ? ([['Offload', i.offload === false ? 'off (--no-offload)' : 'on']] as Array<[string, string]>)
          : []),
        ['DHCP', i.dhcp ? `${i.dhcp.start} - ${i.dhcp.end}` : 'off'],
        ['Domain', i.domain ?? '-'],
        ['dnsmasq', i.dnsmasq ? `pid ${i.dnsmasq.pid}${i.dnsmasq.running ? '' : ' (not running)'}` : '-'],
        ['Config', i.confFile],
        ['Leases', i.leaseFile],
      ];
      ctx.print(rows.map(([k, v]) => `${(k + ':').padEnd(11)}${v}`).join('\n') + '\n');
    });

  ctx
    .handsOver(net.command('define'))
    .argument(
      '<name|file.xml>',
      'network name: 1-32 of A-Z a-z 0-9 _ . - (starting with a letter or digit); or a libvirt network XML file',
    )
    .description(
      'Define a network (stored; not started), from options or from a libvirt network XML file (what ' +
        '`virsh net-dumpxml` prints); XML that kvmnet cannot honour is refused with its XPath.',
    )
    .option('--mode <mode>', 'nat | isolated | routed | open | bridge', 'nat')
    .option(
      '--forward-dev <nic>',
      'nat, routed: guests leave the host only through this interface (libvirt <forward dev>)',
    )
    .option(
      '--uplink <nic>',
      'bridge mode: the host NIC that becomes the bridge port (its address moves to the bridge)',
    )
    .option(
      '--peer <net>',
      "routed: a defined routed network whose guests may reach this one's and back (repeatable; " +
        'guests of different networks are otherwise isolated)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option(
      '--no-offload',
      'nat: no flow offload (default: established TCP/UDP flows take the nftables flowtable fast path, where the kernel has one)',
    )
    .option('--subnet <cidr>', 'IPv4 subnet, e.g. 10.10.0.0/24 (the gateway is its first host)')
    .option('--bridge <name>', 'bridge name (default: lowest free virbrN)')
    .option('--gateway <ip>', "the host's address on the bridge (default: first host of the subnet)")
    .option('--dhcp-range <first-last>', 'DHCP pool (default: every host address after the gateway)')
    .option('--no-dhcp', 'no DHCP server on this network (DNS is still served)')
    .option('--domain <domain>', 'DNS domain of the guests, e.g. lab')
    .option('--mac <mac>', "the bridge's MAC (default: derived from the name)")
    .option('--autostart', 'start it with `kvmnet up` (at boot)', false)
    .option('--dry-run', 'print what would be stored; change nothing', false)
    .addHelpText(
      'after',
      `
Modes:
  nat       guests reach outside through the host's address (masquerade); outside
            reaches guests only through port forwards
  isolated  guests reach each other and the host; nothing is forwarded
  routed    forwarded both ways without NAT; the LAN must route the subnet back
  open      routed, and kvmnet adds no firewall rules at all (libvirt's forward mode open)
  bridge    guests sit on the physical LAN: the bridge takes over --uplink (its MAC,
            addresses and routes); the LAN's router and DHCP server serve the guests.
            No --subnet, --gateway, --dhcp-range, --no-dhcp, --domain or --mac.

Isolation: guests of two kvmnet networks never reach each other (port forwards on the host's
addresses excepted), unless both networks are routed and one names the other with --peer.

Examples:
  kvmnet net define lab --mode nat --subnet 10.10.0.0/24 --dhcp-range 10.10.0.100-10.10.0.199 --domain lab --autostart
  kvmnet net define iso --mode isolated --subnet 10.20.0.0/24
  kvmnet net define r2 --mode routed --subnet 10.31.0.0/24 --peer r1   # r1: routed, defined before
  kvmnet net define lan --mode bridge --uplink eth1 --bridge virbr1
  virsh net-dumpxml default > default.xml && kvmnet net define default.xml [--autostart]`,
    )
    .action(async (name: string, o: DefineOpts, cmd: Command) => {
      const xml = await readNetworkXml(name);
      const input = xml === undefined ? await optionsInput(name, o) : await xmlInput(name, xml, o, cmd);
      const r = await ctx.delegable().define(input, { dryRun: o.dryRun });
      ctx.print(ctx.json() ? json(r) : renderResult(r));
    });

  net
    .command('dumpxml')
    .argument('<name>', 'network name')
    .description(
      'Print a network as libvirt network XML (for `virsh net-define`, or `kvmnet net define FILE.xml` on another host). ' +
        "kvmnet's uplink and autostart go into a <metadata> element of kvmnet's own namespace.",
    )
    .action(async (name: string) => {
      const i = await ctx.engine().info(name);
      const def = (await ctx.engine().exportDefinitions()).networks.find((d) => d.name === i.name);
      if (!def)
        throw inputError('unknown-network', `network "${name}" is not defined`, 'see `kvmnet net list`');
      const xml = (await libvirtXml()).renderNetworkXml(def);
      ctx.print(ctx.json() ? json({ name, xml }) : xml);
    });

  net
    .command('import-libvirt')
    .option('--from <dir>', "libvirt's network definitions", '/etc/libvirt/qemu/networks')
    .option('--dry-run', 'print what would be defined; change nothing', false)
    .description(
      'Take over every network libvirt defines: each DIR/*.xml is imported as by `net define FILE.xml`, autostart as ' +
        "libvirt's DIR/autostart/ says. All or nothing: one network kvmnet cannot honour (its XPath is named) or that " +
        'clashes with a kvmnet network or the host, and none is defined. Networks are defined, not started: stop ' +
        "libvirt's copy first (virsh net-destroy NAME; virsh net-autostart NAME --disable), then `kvmnet net start NAME`.",
    )
    .action(async (o: { from: string; dryRun: boolean }) => {
      const imported = await readLibvirtNetworks(o.from);
      for (const n of imported.notes) process.stderr.write(`kvmnet: ${n}\n`);
      // The stored definitions plus the imported ones, through apply: everything is validated
      // together before anything is stored, and the existing networks are left as they are.
      const engine = ctx.engine();
      const cur = await engine.exportDefinitions();
      const { parseDefinitionsFile, renderDefinitions } = await definitionsFile();
      const stored = parseDefinitionsFile(
        renderDefinitions(cur.networks, cur.forwards),
        'the stored definitions',
      );
      for (const input of imported.inputs) {
        if (stored.networks.some((n) => n.name === input.name)) {
          throw inputError(
            'already-defined',
            `network "${input.name}" (${join(o.from, `${input.name}.xml`)}) is already defined in kvmnet`,
            'undefine one of them, or rename the libvirt network',
          );
        }
      }
      const r = await engine.apply([...stored.networks, ...imported.inputs], stored.forwards, {
        dryRun: o.dryRun,
      });
      ctx.print(ctx.json() ? json(r) : renderResult(r));
      if (!ctx.json() && imported.inputs.length) {
        ctx.print(
          `next: for each network, stop libvirt's copy (virsh net-destroy NAME; virsh net-autostart NAME --disable), then kvmnet net start NAME\n`,
        );
      }
    });

  net
    .command('persist')
    .argument('<name>', 'a bridged network')
    .requiredOption('--format <format>', `the host's network system: ${PERSIST_FORMATS.join(' | ')}`)
    .option('--write', 'write the files (default: print them)', false)
    .option('--root <dir>', 'write under this directory instead of / (e.g. an image being built)', '/')
    .description(
      "Print (or with --write, write) the files that make a bridged network survive a reboot in the host's own " +
        'network configuration: RHEL ifcfg, systemd-networkd, NetworkManager keyfiles, Debian ifupdown or netplan. ' +
        'The addresses and routes are those the uplink had when the network started (or has now, if it is stopped).',
    )
    .action(async (name: string, o: { format: string; write: boolean; root: string }) => {
      if (!(PERSIST_FORMATS as readonly string[]).includes(o.format)) {
        throw inputError(
          'invalid-format',
          `format "${o.format}" is not known`,
          `use one of: ${PERSIST_FORMATS.join(', ')}`,
        );
      }
      const r = await ctx.engine().persist(name, o.format as PersistFormat, { write: o.write, root: o.root });
      if (ctx.json()) return ctx.print(json(r));
      if (o.write) return ctx.print(r.written.map((w) => `wrote ${w}\n`).join(''));
      ctx.print(r.files.map((f) => `# ${f.path} (mode ${f.mode.toString(8)})\n${f.content}`).join('\n'));
    });

  const simple = (
    verb: string,
    description: string,
    run: (
      e: Delegable,
      name: string,
      o: { dryRun: boolean; force: boolean; disable: boolean; confirmTimeout?: number },
    ) => ReturnType<Engine['start']>,
    extra?: (c: Command) => Command,
  ): void => {
    let c = ctx
      .handsOver(net.command(verb))
      .argument('<name>', 'network name')
      .description(description)
      .option('--dry-run', 'print the plan; change nothing', false);
    if (extra) c = extra(c);
    c.action(
      async (
        name: string,
        o: { dryRun: boolean; force?: boolean; disable?: boolean; confirmTimeout?: string },
      ) => {
        const t = o.confirmTimeout === undefined ? undefined : parseConfirmTimeout(o.confirmTimeout);
        const r = await run(ctx.delegable(), name, {
          dryRun: o.dryRun,
          force: o.force ?? false,
          disable: o.disable ?? false,
          ...(t === undefined ? {} : { confirmTimeout: t }),
        });
        const p = resultOutput(r, ctx.json(), true);
        process.stderr.write(p.stderr);
        ctx.print(p.stdout);
      },
    );
  };
  simple(
    'start',
    'Start a network: bridge, addresses, firewall rules, dnsmasq. Running it again repairs drift. A bridged network ' +
      'moves its uplink under the bridge in one step and checks that the gateway (or a neighbour) still answers; if not, ' +
      'it puts the uplink back exactly and fails.',
    (e, n, o) => e.start(n, o),
    (c) =>
      c.option(
        '--confirm-timeout <seconds>',
        'bridged networks: how long the gateway may take to answer (default 20)',
      ),
  );
  simple(
    'stop',
    'Stop a network: removes exactly what start created. Stopping a stopped network succeeds.',
    (e, n, o) => e.stop(n, o),
  );
  simple(
    'undefine',
    'Remove a network definition (and its lease file). A running network, or one with ports, is refused unless --force, which stops it and removes its ports.',
    (e, n, o) => e.undefine(n, o),
    (c) => c.option('--force', 'stop the network first and remove its ports', false),
  );
  simple(
    'autostart',
    'Mark a network to be started by `kvmnet up` (at boot), or with --disable not.',
    (e, n, o) => e.setAutostart(n, !o.disable, o),
    (c) => c.option('--disable', 'turn autostart off', false),
  );
}

interface DefineOpts {
  mode: string;
  uplink?: string;
  forwardDev?: string;
  offload: boolean;
  peer?: string[];
  subnet?: string;
  bridge?: string;
  gateway?: string;
  dhcpRange?: string;
  dhcp: boolean;
  domain?: string;
  mac?: string;
  autostart: boolean;
  dryRun: boolean;
}

/** `net define FILE.xml`: the imported network; options other than --autostart and --dry-run are refused. */
async function xmlInput(name: string, xml: string, o: DefineOpts, cmd: Command): Promise<NetworkInput> {
  const given = cmd.options
    .map((opt) => opt.attributeName())
    .filter((k) => !['autostart', 'dryRun'].includes(k) && cmd.getOptionValueSource(k) === 'cli');
  if (given.length > 0) {
    throw inputError(
      'conflicting-options',
      `${name} is a libvirt network XML file: options other than --autostart and --dry-run do not apply`,
      'change the XML instead',
    );
  }
  const imported = (await libvirtXml()).importNetworkXml(xml);
  for (const n of imported.notes) process.stderr.write(`kvmnet: ${n}\n`);
  return { ...imported.input, ...(o.autostart ? { autostart: true } : {}) };
}

/** `net define NAME --option …`: the network the options describe. */
async function optionsInput(name: string, o: DefineOpts): Promise<NetworkInput> {
  const input: NetworkInput = { name, mode: o.mode, autostart: o.autostart };
  if (o.subnet !== undefined) input.subnet = o.subnet;
  if (o.bridge !== undefined) input.bridge = o.bridge;
  if (o.gateway !== undefined) input.gateway = o.gateway;
  if (o.domain !== undefined) input.domain = o.domain;
  if (o.mac !== undefined) input.mac = o.mac;
  if (o.uplink !== undefined) input.uplink = o.uplink;
  if (o.forwardDev !== undefined) input.forwardDev = o.forwardDev;
  if (o.peer !== undefined) input.peers = o.peer;
  if (!o.offload) input.offload = false;
  if (!o.dhcp && o.dhcpRange !== undefined) {
    throw inputError(
      'conflicting-options',
      '--dhcp-range and --no-dhcp contradict each other',
      'pass only one of them',
    );
  }
  if (!o.dhcp) input.dhcp = null;
  else if (o.dhcpRange !== undefined)
    input.dhcp = (await import('../model/network.js')).parseDhcpRangeText(o.dhcpRange);
  return input;
}

/** The file's text if `arg` names a readable file holding libvirt network XML; otherwise undefined. */
async function readNetworkXml(arg: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(arg, 'utf8');
  } catch {
    return undefined;
  }
  return (await libvirtXml()).isNetworkXml(text) ? text : undefined;
}

/** Every libvirt network definition in `dir` (*.xml), with autostart from dir/autostart/. */
async function readLibvirtNetworks(dir: string): Promise<{ inputs: NetworkInput[]; notes: string[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.xml')).sort();
  } catch (e) {
    throw inputError(
      'unreadable-dir',
      `cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      "point --from at libvirt's network directory",
    );
  }
  if (names.length === 0)
    throw inputError(
      'nothing-to-import',
      `${dir} holds no network definitions (*.xml)`,
      "point --from at libvirt's network directory",
    );
  let auto = new Set<string>();
  try {
    auto = new Set((await readdir(join(dir, 'autostart'))).filter((n) => n.endsWith('.xml')));
  } catch {
    /* no autostart directory: nothing autostarts */
  }
  const inputs: NetworkInput[] = [];
  const notes: string[] = [];
  for (const n of names) {
    const file = join(dir, n);
    let imported;
    try {
      imported = (await libvirtXml()).importNetworkXml(await readFile(file, 'utf8'));
    } catch (e) {
      if (e instanceof KvmnetError)
        throw new KvmnetError(e.code, `${file}: ${e.message}`, e.hint === undefined ? {} : { hint: e.hint });
      throw e;
    }
    inputs.push({ ...imported.input, autostart: auto.has(n) });
    notes.push(...imported.notes.map((x) => `${file}: ${x}`));
  }
  return { inputs, notes };
}
