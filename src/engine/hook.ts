// The libvirt qemu hook kvmnet installs: an executable script in /etc/libvirt/hooks/qemu.d/ (run by
// libvirt >= 6.5 after the main `qemu` hook, which kvmnet leaves alone) that hands each domain start
// and stop to `kvmnet libvirt hook-event`, with a timeout, and always exits 0.
import { chmod, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { makeDirs } from './fsutil.js';
import { join } from 'node:path';
import { inputError } from '../model/errors.js';

export const DEFAULT_HOOKS_DIR = '/etc/libvirt/hooks';
/** The line that marks a hook script as kvmnet's: install overwrites and uninstall removes only such a file. */
export const HOOK_MARKER = '# kvmnet-libvirt-hook: written by `kvmnet libvirt hook install`';
/** Seconds the hook gives kvmnet before it gives up (libvirt waits for the hook). */
export const HOOK_TIMEOUT_S = 10;
/** Operations the hook hands to kvmnet; the others return at once. */
export const HOOK_OPERATIONS = ['started', 'reconnect', 'attach', 'stopped', 'release'];

export interface HookScriptInput {
  node: string;
  bin: string;
  stateDir: string;
  runDir: string;
}

function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function hookPath(dir: string): string {
  return join(dir, 'qemu.d', 'kvmnet');
}

export function hookLogFile(stateDir: string): string {
  return join(stateDir, 'libvirt-hook.log');
}

export function renderHookScript(i: HookScriptInput): string {
  const log = hookLogFile(i.stateDir);
  return `#!/bin/sh
${HOOK_MARKER}; \`kvmnet libvirt hook uninstall\` removes it.
# libvirt runs it as: kvmnet DOMAIN OPERATION SUBOP EXTRA, with the domain XML on standard input.
# It tells kvmnet which tap of which domain sits on a kvmnet network. It never calls libvirt and
# always exits 0: a problem is logged to ${log} (and syslog), never fails a domain.
KVMNET_STATE_DIR=${sq(i.stateDir)}
KVMNET_RUN_DIR=${sq(i.runDir)}
export KVMNET_STATE_DIR KVMNET_RUN_DIR
log=${sq(log)}
case "$2" in
${HOOK_OPERATIONS.join(' | ')}) ;;
*)
	cat >/dev/null 2>&1
	exit 0
	;;
esac
mkdir -p "$KVMNET_STATE_DIR" 2>/dev/null
t=
if command -v timeout >/dev/null 2>&1; then t="timeout -k 2 ${HOOK_TIMEOUT_S}"; fi
$t ${sq(i.node)} ${sq(i.bin)} libvirt hook-event -- "$1" "$2" "$3" >>"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
	msg="kvmnet libvirt hook: $1 $2 $3: exit status $rc (failed or timed out)"
	echo "$(date '+%Y-%m-%dT%H:%M:%S%z') $msg" >>"$log" 2>/dev/null
	if command -v logger >/dev/null 2>&1; then logger -t kvmnet -- "$msg" 2>/dev/null; fi
fi
exit 0
`;
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function isOurs(text: string): boolean {
  return text.split('\n').some((l) => l.startsWith(HOOK_MARKER));
}

export interface HookInstallResult {
  dryRun: boolean;
  path: string;
  /** install: the file was written (or would be); uninstall: it was removed (or would be). */
  changed: boolean;
  script: string;
}

/** Writes the hook (0755) into DIR/qemu.d/kvmnet; refuses to overwrite a file kvmnet did not write. */
export async function installHook(
  dir: string,
  input: HookScriptInput,
  opts: { dryRun: boolean },
): Promise<HookInstallResult> {
  const path = hookPath(dir);
  const script = renderHookScript(input);
  const old = await readOrNull(path);
  if (old !== null && !isOurs(old)) {
    throw inputError(
      'hook-exists',
      `${path} exists and was not written by kvmnet`,
      'move it away, or install into another directory with --dir',
    );
  }
  const changed = old !== script;
  if (opts.dryRun || !changed) {
    if (!opts.dryRun) await chmod(path, 0o755);
    return { dryRun: opts.dryRun, path, changed, script };
  }
  await makeDirs(join(dir, 'qemu.d'), 0o755);
  const tmp = `${path}.kvmnet-tmp`;
  await writeFile(tmp, script, { mode: 0o755 });
  await chmod(tmp, 0o755);
  await rename(tmp, path);
  return { dryRun: false, path, changed, script };
}

/** Removes DIR/qemu.d/kvmnet if kvmnet wrote it (its marker line); anything else is left alone. */
export async function uninstallHook(dir: string, opts: { dryRun: boolean }): Promise<HookInstallResult> {
  const path = hookPath(dir);
  const old = await readOrNull(path);
  if (old === null) return { dryRun: opts.dryRun, path, changed: false, script: '' };
  if (!isOurs(old)) {
    throw inputError(
      'hook-not-kvmnet',
      `${path} was not written by kvmnet (no kvmnet marker line)`,
      'remove it by hand if it is yours to remove',
    );
  }
  if (!opts.dryRun) await unlink(path);
  return { dryRun: opts.dryRun, path, changed: true, script: old };
}
