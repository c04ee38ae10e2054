// Collects the facts `kvmnet doctor` analyses (src/doctor/analyse.ts) and applies its safe fixes.
// Reading changes nothing: iptables-*-save without -t lists only tables that already exist (with
// -t it would create the legacy filter table). Sysctls are read under $KVMNET_PROC_SYS (default
// /proc/sys), which tests point at a fake tree for what a namespace cannot isolate (whether
// br_netfilter is loaded at all).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DOCTOR_TOOLS, type DoctorFacts, type FixAction, type NetworkFact } from '../doctor/analyse.js';
import { realExec, type Exec } from './exec.js';
import { Host, onPath } from './host.js';

export function procSys(): string {
  return process.env.KVMNET_PROC_SYS ?? '/proc/sys';
}

async function sysctl(key: string): Promise<string | null> {
  try {
    return (await readFile(join(procSys(), ...key.split('.')), 'utf8')).trim();
  } catch {
    return null;
  }
}

async function output(exec: Exec, cmd: string, args: string[]): Promise<string | null> {
  const r = await exec.run(cmd, args);
  return r.code === 0 ? r.stdout : null;
}

export async function collectDoctorFacts(
  networks: NetworkFact[],
  exec: Exec = realExec,
): Promise<DoctorFacts> {
  const host = new Host(exec);
  const tools: Record<string, boolean> = {};
  for (const t of Object.keys(DOCTOR_TOOLS)) tools[t] = await onPath(t);
  const nftText = tools.nft ? await output(exec, 'nft', ['-j', 'list', 'ruleset']) : null;
  let nftRuleset: unknown;
  try {
    nftRuleset = nftText ? (JSON.parse(nftText) as unknown) : null;
  } catch {
    nftRuleset = null;
  }
  return {
    networks,
    tools,
    ipForward: await sysctl('net.ipv4.ip_forward'),
    bridgeNfCallIptables: await sysctl('net.bridge.bridge-nf-call-iptables'),
    iptablesNft: (await onPath('iptables-nft-save')) ? await output(exec, 'iptables-nft-save', []) : null,
    iptablesLegacy: (await onPath('iptables-legacy-save'))
      ? await output(exec, 'iptables-legacy-save', [])
      : null,
    nftRuleset,
    routes: tools.ip ? await host.routes().catch(() => []) : [],
    addrs: tools.ip ? await host.addrs().catch(() => []) : [],
  };
}

/** Runs one fix action; returns an error text, or null when it worked. */
export async function applyFixAction(a: FixAction, exec: Exec = realExec): Promise<string | null> {
  if (a.kind === 'sysctl') {
    try {
      await writeFile(join(procSys(), ...a.key.split('.')), a.value + '\n');
      return null;
    } catch (e) {
      return `cannot write ${a.key}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
    }
  }
  const [cmd = '', ...args] = a.argv;
  const r = await exec.run(cmd, args);
  return r.code === 0 ? null : (r.stderr || r.stdout).trim() || `exit ${r.code}`;
}
