// `kvmnet check` and `kvmnet repair`: drift between the stored definitions of running networks and
// the host (src/engine/drift.ts), listed and restored.
import type { Command } from 'commander';
import { formatPlan } from '../engine/plan-format.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

const KINDS = `Kinds: bridge-missing, bridge-down, bridge-address, bridge-settings (MAC, MTU, STP), sysctl
(ip_forward of a nat/routed network), nft-table (table inet kvmnet gone, e.g. after \`nft flush
ruleset\`), nft-chain, nft-element, forward-missing (a port forward's map element), dnsmasq-down,
dnsmasq-config (its conf or hosts files), tap-missing, tap-unplugged (no master or another one),
tap-down (or up when stored down), tap-settings (MAC, MTU), and for bridged networks
uplink-unplugged, uplink-address (not on the bridge) and uplink-route.`;

export function registerDrift(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .summary('list every difference between running networks and the host (exit 1 if any)')
    .description(
      'Compare the stored definitions of the running networks (all, or the named ones) with what the kernel ' +
        "reports: bridges, addresses, sysctls, kvmnet's nftables table and chains, port forwards, dnsmasq and " +
        "its files, the ports' taps, a bridged network's uplink. One line per difference: network, kind, " +
        'object, expected and found value, and what `kvmnet repair` would do. Changes nothing. Exit status: 0 ' +
        'no drift, 1 drift found, 2 unknown network.',
    )
    .argument('[network...]', 'only these networks (default: every running network)')
    .addHelpText(
      'after',
      `
${KINDS}

JSON (--json): {"networks": [...checked], "findings": [{network, kind, object, expected, actual, fix}]}.

Examples:
  kvmnet check
  kvmnet check default --json`,
    )
    .action(async (names: string[]) => {
      const { checkDrift, formatFindings } = await import('../engine/drift.js');
      const r = await checkDrift(ctx.engine(), names);
      if (ctx.json()) ctx.print(json(r));
      else if (r.findings.length === 0)
        ctx.print(
          `no drift (${r.networks.length} running network${r.networks.length === 1 ? '' : 's'} checked)\n`,
        );
      else ctx.print(formatFindings(r.findings));
      if (r.findings.length) process.exitCode = 1;
    });

  program
    .command('repair')
    .summary('restore what `kvmnet check` finds, touching nothing that is right')
    .description(
      'Restore the differences `kvmnet check` lists for the running networks (all, or the named ones), ' +
        'network by network, planned like `net start` of a running network: only what differs changes. An ' +
        "existing bridge is kept, so running guests' taps stay plugged; a re-created bridge gets its taps " +
        'plugged back and dnsmasq restarted; dnsmasq is otherwise restarted only when it is gone or its ' +
        'configuration differs; nftables gets one transaction rewriting only the table, chains and elements ' +
        'that differ. A failing network is rolled back and the others are still repaired. Exit status: 0 ' +
        'everything restored (or nothing to do), 1 something is left or failed, 2 unknown network.',
    )
    .argument('[network...]', 'only these networks (default: every running network)')
    .option('--dry-run', 'print the findings and the plan; change nothing', false)
    .addHelpText(
      'after',
      `
${KINDS}

JSON (--json): {"networks", "findings" (before), "dryRun", "plans" (steps per network),
"remaining" (findings after the repair), "errors"}.

Examples:
  kvmnet repair --dry-run
  kvmnet repair default`,
    )
    .action(async (names: string[], o: { dryRun: boolean }) => {
      const { formatFindings, repairDrift } = await import('../engine/drift.js');
      const r = await repairDrift(ctx.engine(), names, { dryRun: o.dryRun });
      if (ctx.json()) ctx.print(json(r));
      else {
        const out: string[] = [];
        if (r.findings.length === 0) out.push('no drift, nothing to do\n');
        else out.push(formatFindings(r.findings));
        if (o.dryRun) for (const p of r.plans) out.push(formatPlan(p));
        else if (r.findings.length) {
          for (const p of r.plans)
            out.push(
              `network ${p.network}: repaired (${p.steps.length} step${p.steps.length === 1 ? '' : 's'})\n`,
            );
          for (const e of r.errors) out.push(`error: ${e}\n`);
          if (r.remaining.length) out.push('still different:\n' + formatFindings(r.remaining));
        }
        ctx.print(out.join(''));
      }
      if (!o.dryRun && (r.errors.length || r.remaining.length)) process.exitCode = 1;
    });
}
