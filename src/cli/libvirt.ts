// `kvmnet libvirt ...`: libvirt domains on kvmnet networks. `interface` records a libvirt port and
// prints the domain's <interface> element; `hook install|uninstall` manage the qemu hook, whose
// handler is the hidden `hook-event` command.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_HOOKS_DIR, hookLogFile, installHook, uninstallHook } from '../engine/hook.js';
import type { PortInput } from '../model/port.js';
import type { CliContext } from './context.js';
import { json, renderResult } from './output.js';

function binPath(): string {
  const arg = process.argv[1] ?? 'kvmnet';
  try {
    return realpathSync(arg);
  } catch {
    return resolve(arg);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerLibvirt(program: Command, ctx: CliContext): void {
  const dirs = (): { stateDir: string; runDir: string } => {
    const o = program.opts<{ stateDir: string; runDir: string }>();
    return { stateDir: resolve(o.stateDir), runDir: resolve(o.runDir) };
  };
  const lv = program
    .command('libvirt')
    .summary('libvirt domains on kvmnet networks: <interface> elements and the qemu hook')
    .description(
      'libvirt domains on kvmnet networks. `libvirt interface` records a libvirt port (libvirt makes its tap) and ' +
        'prints the <interface> element for it; `libvirt hook install` installs the qemu hook that tells kvmnet ' +
        'which tap each running domain has, so `show`, `leases` and forwards name the domain.',
    );

  ctx
    .handsOver(lv.command('interface'))
    .argument('<network>', 'network name')
    .requiredOption('--vm <name>', 'the domain (a DNS label: it becomes the guest name in the DNS)')
    .option('--mac <mac>', "the guest's MAC (default: a random unique 52:54:00:xx:xx:xx)")
    .option('--ip <ip>', 'static DHCP reservation and DNS name on the network')
    .option('--model <type>', 'libvirt NIC model', 'virtio')
    .option('--dry-run', 'print the plan; change nothing', false)
    .description(
      'Record a libvirt port (the MAC and, with --ip, the reservation, made as `port add` makes them; libvirt makes the tap) ' +
        'and print the <interface> element for `virsh edit` and the virt-install --network argument.',
    )
    .addHelpText(
      'after',
      `
Example:
  kvmnet libvirt interface default --vm kvm1 --mac 52:54:00:60:e4:6a --ip 192.168.122.50
  kvm1/net0  kvm1  52:54:00:60:e4:6a  192.168.122.50  on default (bridge virbr0); libvirt makes the tap
  <interface type='bridge'>
    <mac address='52:54:00:60:e4:6a'/>
    <source bridge='virbr0'/>
    <model type='virtio'/>
  </interface>
  virt-install: --network bridge=virbr0,mac=52:54:00:60:e4:6a,model=virtio

With the hook installed (kvmnet libvirt hook install), kvmnet learns the tap when the domain starts.`,
    )
    .action(
      async (
        network: string,
        o: { vm: string; mac?: string; ip?: string; model: string; dryRun: boolean },
      ) => {
        const input: PortInput = { network, vm: o.vm, model: o.model };
        if (o.mac !== undefined) input.mac = o.mac;
        if (o.ip !== undefined) input.ip = o.ip;
        const r = await ctx.delegable().libvirtInterface(input, { dryRun: o.dryRun });
        const { renderInterfaceXml, virtInstallNetwork } = await import('../model/domain.js');
        const xml = renderInterfaceXml(r.bridge, r.port.mac, r.port.model);
        const virtInstall = virtInstallNetwork(r.bridge, r.port.mac, r.port.model);
        if (ctx.json()) return ctx.print(json({ ...r, xml, virtInstall }));
        ctx.print(
          (o.dryRun ? renderResult(r) : '') +
            `${r.port.id}  ${r.port.vm}  ${r.port.mac}${r.port.ip ? `  ${r.port.ip}` : ''}  on ${r.port.network} (bridge ${r.bridge}); libvirt makes the tap\n` +
            xml +
            `virt-install: --network ${virtInstall}\n`,
        );
      },
    );

  const hook = lv
    .command('hook')
    .summary('install or remove the libvirt qemu hook')
    .description(
      "The qemu hook (DIR/qemu.d/kvmnet, run by libvirt >= 6.5) tells kvmnet each domain's taps on kvmnet networks " +
        'when it starts and stops. It never calls libvirt and never fails a domain (it always exits 0).',
    );

  hook
    .command('install')
    .option('--dir <dir>', "libvirt's hooks directory", DEFAULT_HOOKS_DIR)
    .option('--dry-run', 'print the script; change nothing', false)
    .description(
      'Write the hook script DIR/qemu.d/kvmnet (mode 0755). It runs this kvmnet (this node and bin/kvmnet) with this ' +
        'state and run directory. A qemu.d/kvmnet that kvmnet did not write is refused. libvirt looks for hooks when ' +
        'it starts: restart libvirtd (or virtqemud) after the first install.',
    )
    .action(async (o: { dir: string; dryRun: boolean }) => {
      const d = dirs();
      const r = await installHook(
        resolve(o.dir),
        { node: process.execPath, bin: binPath(), stateDir: d.stateDir, runDir: d.runDir },
        { dryRun: o.dryRun },
      );
      if (ctx.json()) return ctx.print(json(r));
      if (o.dryRun) return ctx.print(`# would write ${r.path} (mode 0755)\n${r.script}`);
      ctx.print(
        `${r.path}: ${r.changed ? 'installed' : 'already installed'} (log: ${hookLogFile(d.stateDir)})\n` +
          (r.changed ? 'note: restart libvirtd (or virtqemud) if this is its first hook script\n' : ''),
      );
    });

  hook
    .command('uninstall')
    .option('--dir <dir>', "libvirt's hooks directory", DEFAULT_HOOKS_DIR)
    .option('--dry-run', 'say what would be removed; change nothing', false)
    .description(
      'Remove DIR/qemu.d/kvmnet if kvmnet wrote it (it carries a marker line); nothing else is touched.',
    )
    .action(async (o: { dir: string; dryRun: boolean }) => {
      const r = await uninstallHook(resolve(o.dir), { dryRun: o.dryRun });
      if (ctx.json()) return ctx.print(json(r));
      ctx.print(
        r.changed
          ? `${r.path}: ${o.dryRun ? 'would be removed' : 'removed'}\n`
          : `${r.path}: not installed\n`,
      );
    });

  // The hook's handler: libvirt's arguments, the domain XML on stdin. Never fails: a problem is
  // written to stderr (the hook's log) and the exit status stays 0.
  lv.command('hook-event', { hidden: true })
    .argument('<domain>')
    .argument('<operation>')
    .argument('[subop]')
    .argument('[extra]')
    .action(async (domain: string, operation: string, subop?: string) => {
      const stamp = (): string => new Date().toISOString();
      const what = `${domain} ${operation} ${subop ?? '-'}`;
      try {
        const xml = await readStdin();
        const notes = await ctx.engine().libvirtHookEvent(domain, operation, xml);
        for (const n of notes) process.stderr.write(`${stamp()} ${what}: ${n}\n`);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        process.stderr.write(`${stamp()} ${what}: error: ${msg}\n`);
      }
    });
}
