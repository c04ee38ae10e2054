// `kvmnet doctor`: finds what on this host breaks guest networking (other firewalls' drops, Docker,
// br_netfilter, ip_forward, clashing subnets, missing tools), prints each finding with its fix, and
// with --fix applies the safe fixes. Exit 0: no findings; 1: findings remain; 2: bad input.
import type { Command } from 'commander';
import type { Finding } from '../doctor/analyse.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

interface Applied {
  id: string;
  commands: string[];
  ok: boolean;
  error?: string;
}

export function registerDoctor(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .summary('find what on this host breaks guest networking, with the fix for each')
    .description(
      "Check the host for what breaks kvmnet's guests: Docker's FORWARD policy DROP (iptables-nft and " +
        'iptables-legacy), br_netfilter sending bridged frames through those chains, other nftables tables ' +
        '(ufw, firewalld, ...) whose forward or input chains drop the traffic or DHCP/DNS of running networks, ' +
        'net.ipv4.ip_forward turned off, subnets that clash with host routes or addresses, and missing ' +
        'ip, nft or dnsmasq. Each finding has an id, a severity, an explanation and the exact commands that ' +
        'fix it. Nothing is changed without --fix.',
    )
    .option(
      '--fix',
      "apply the safe fixes (accept rules in Docker's DOCKER-USER chain, net.ipv4.ip_forward=1), say what was done, then check again",
      false,
    )
    .addHelpText(
      'after',
      `
Exit status: 0 no findings (info notes do not count), 1 findings remain, 2 bad input.
With --json: {findings, fixed, ok}, shapes in docs/cli.md.

Only fixes that cannot fight another tool are applied: DOCKER-USER is the chain Docker keeps for the
admin's rules; ip_forward is what running NAT/routed networks need anyway. Rules for someone else's
chains or nftables tables (ufw, firewalld) are printed, not applied: their owner rewrites them, and an
accept in kvmnet's own table cannot override another table's drop.

Examples:
  kvmnet doctor
  kvmnet doctor --fix
  kvmnet doctor --json | jq '.findings[].id'`,
    )
    .action(async (o: { fix: boolean }) => {
      // Loaded here, not at start-up: only this command needs them.
      const [{ analyse, blocking }, { applyFixAction, collectDoctorFacts }] = await Promise.all([
        import('../doctor/analyse.js'),
        import('../host/doctor.js'),
      ]);
      const networks = (await ctx.engine().list()).map((n) => ({
        name: n.name,
        mode: n.mode,
        bridge: n.bridge,
        ...(n.subnet === undefined ? {} : { subnet: n.subnet }),
        ...(n.gateway === undefined ? {} : { gateway: n.gateway }),
        ...(n.forwardDev === undefined ? {} : { forwardDev: n.forwardDev }),
        dhcp: n.dhcp !== null,
        running: n.state === 'active',
      }));
      let findings = analyse(await collectDoctorFacts(networks));
      const applied: Applied[] = [];
      if (o.fix) {
        for (const f of findings) {
          if (!f.safe || f.actions.length === 0) continue;
          const a: Applied = { id: f.id, commands: f.fix, ok: true };
          for (const act of f.actions) {
            const err = await applyFixAction(act);
            if (err !== null) {
              a.ok = false;
              a.error = err;
              break;
            }
          }
          applied.push(a);
        }
        if (applied.length) findings = analyse(await collectDoctorFacts(networks));
      }
      const remaining = blocking(findings);
      if (ctx.json()) ctx.print(json({ findings, fixed: applied, ok: remaining.length === 0 }));
      else ctx.print(render(findings, applied, o.fix, remaining.length));
      if (remaining.length) process.exitCode = 1;
    });
}

function render(findings: Finding[], applied: Applied[], fix: boolean, n: number): string {
  const out: string[] = [];
  for (const a of applied) {
    out.push(a.ok ? `fixed ${a.id}:` : `could not fix ${a.id}: ${a.error ?? ''}`);
    for (const c of a.commands) out.push(`  ran: ${c}`);
  }
  if (applied.length) out.push('');
  for (const f of findings) {
    out.push(`${f.severity.toUpperCase()} ${f.id}`);
    out.push(`  ${f.summary}`);
    out.push(`  why: ${f.explanation}`);
    out.push(
      `  fix${f.safe ? (fix ? ' (safe; --fix did not manage)' : ' (safe: kvmnet doctor --fix runs it)') : ''}:`,
    );
    for (const c of f.fix) out.push(`    ${c}`);
    out.push('');
  }
  out.push(
    n === 0
      ? findings.length === 0
        ? 'no problems found'
        : 'no problems found (notes above are for information)'
      : `${n} problem${n === 1 ? '' : 's'} found`,
  );
  return out.join('\n') + '\n';
}
