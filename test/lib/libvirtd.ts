// Debian's libvirtd (and virtlogd) run inside a lab's host namespace, as ../shared/libvirt-lab.md
// describes: /dev/kvm replaced by a root:kvm 0660 node in libvirtd's own mount namespace only,
// libvirtd pinned to CPU 0 until its API answers, the `default` network of the package kept from
// autostarting. libvirt's paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt) are global, so only
// one test file may use this. stop() removes what start() changed and kills the daemons by PID.
import { lstat, readFile, readlink, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from './lab.js';
import { must, run, type RunResult } from './proc.js';

export const LIBVIRT_URI = 'qemu:///system';
const AUTOSTART_DEFAULT = '/etc/libvirt/qemu/networks/autostart/default.xml';
const RUN_DIR = '/run/libvirt';
const PIDFILES = { libvirtd: '/run/libvirtd.pid', virtlogd: '/run/virtlogd.pid' } as const;

export function virsh(args: string[], input?: string): Promise<RunResult> {
  return run('virsh', ['-q', '-c', LIBVIRT_URI, ...args], {
    ...(input === undefined ? {} : { input }),
    timeoutMs: 30_000,
  });
}

export async function virshOk(...args: string[]): Promise<string> {
  const r = await virsh(args);
  if (r.code !== 0) throw new Error(`virsh ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function pidOf(file: string): Promise<number | null> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killPid(pid: number | null): Promise<void> {
  if (pid === null || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

export class Libvirtd {
  private autostartTarget: string | null = null;
  private started = false;
  /** /run/libvirt is libvirtd's runtime directory: removed on stop() if start() made it. */
  private madeRunDir = false;

  private constructor(private readonly lab: Lab) {}

  /** Refuses if a libvirtd already runs (ours would share its sockets and files). */
  static async start(lab: Lab): Promise<Libvirtd> {
    for (const f of Object.values(PIDFILES)) {
      const pid = await pidOf(f);
      if (pid !== null && alive(pid)) throw new Error(`${f}: a daemon (pid ${pid}) is already running`);
    }
    const d = new Libvirtd(lab);
    try {
      await d.startDaemons();
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  private async startDaemons(): Promise<void> {
    // The package's `default` network (virbr0, 192.168.122.0/24) would clash with kvmnet's.
    try {
      if ((await lstat(AUTOSTART_DEFAULT)).isSymbolicLink()) {
        this.autostartTarget = await readlink(AUTOSTART_DEFAULT);
        await unlink(AUTOSTART_DEFAULT);
      }
    } catch {
      /* no autostart link */
    }
    this.madeRunDir = !(await lstat(RUN_DIR).then(
      () => true,
      () => false,
    ));
    this.started = true;
    await must('ip', ['netns', 'exec', this.lab.hostNs, 'virtlogd', '--daemon']);
    const kvm = join(this.lab.dir, 'kvm');
    await must('mknod', ['-m', '0660', kvm, 'c', '10', '232']);
    await must('chown', ['root:kvm', kvm]);
    await must('ip', [
      'netns',
      'exec',
      this.lab.hostNs,
      'sh',
      '-c',
      `mount --bind '${kvm}' /dev/kvm && exec taskset -c 0 libvirtd --daemon`,
    ]);
    const deadline = Date.now() + 40_000;
    for (;;) {
      const r = await virsh(['uri']);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`libvirtd did not answer: ${r.stderr.trim()}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const pid = await pidOf(PIDFILES.libvirtd);
    if (pid !== null) await run('taskset', ['-a', '-p', '-c', '0-1023', String(pid)]);
  }

  /** Kills libvirtd and virtlogd by their PID files and restores the autostart link. */
  async stop(): Promise<void> {
    if (this.started) {
      await killPid(await pidOf(PIDFILES.libvirtd));
      await killPid(await pidOf(PIDFILES.virtlogd));
      for (const f of Object.values(PIDFILES)) await rm(f, { force: true });
      if (this.madeRunDir) await rm(RUN_DIR, { recursive: true, force: true });
    }
    if (this.autostartTarget !== null) {
      await symlink(this.autostartTarget, AUTOSTART_DEFAULT).catch(() => {});
      this.autostartTarget = null;
    }
    this.started = false;
  }
}
