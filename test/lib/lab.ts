// Namespace labs (../shared/design.md "Test lab pattern"): a host namespace that runs kvmnet (its
// eth1 is a veth to the LAN), a LAN namespace with a router at 192.168.100.254, and guest
// namespaces plugged into kvmnet bridges by veth. Everything is created inside namespaces the lab
// owns and removed by destroy(); the root namespace is never touched.
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { must, run, Tracked, type RunResult } from './proc.js';
import {
  diffHostState,
  FOREIGN_NFT,
  recordHostState,
  ROOT_SYSCTLS,
  SPARE_ADDR,
  SPARE_LINK,
  SPARE_ROUTE,
  type HostState,
} from './hostcheck.js';

/** The repository root (this file runs from dist/test/lib). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const LAB_PREFIX = 'kt';
export const LAN_ROUTER = '192.168.100.254';
export const HOST_LAN_IP = '192.168.100.239';

export interface Snapshot {
  links: unknown[];
  addrs: unknown[];
  routes: unknown[];
  nft: string;
  pids: string;
  files: Record<string, string>;
}

export class Lab {
  readonly hostNs: string;
  readonly lanNs: string;
  readonly guests: string[] = [];
  readonly tracked: Tracked[] = [];
  private guestIndex = 0;
  /** The host check (hostcheck.ts): root namespace at create, host namespace once the admin's objects are in. */
  private rootBefore: HostState | undefined;
  private hostBefore: HostState | undefined;
  private hostCheck = true;
  private destroyed = false;

  private constructor(
    readonly name: string,
    readonly dir: string,
  ) {
    this.hostNs = `${name}-host`;
    this.lanNs = `${name}-lan`;
  }

  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get runDir(): string {
    return join(this.dir, 'run');
  }

  /** Creates host + LAN namespaces joined by a veth: host eth1 192.168.100.239/24, LAN router .254. */
  static async create(short: string): Promise<Lab> {
    const name = `${LAB_PREFIX}${process.pid % 100000}-${short}`;
    const lab = new Lab(name, await mkdtemp(join(tmpdir(), `kvmnet-${short}-`)));
    // Like /var/lib and /run: dnsmasq, once it dropped root, must reach its hosts files.
    await chmod(lab.dir, 0o755);
    try {
      lab.rootBefore = await recordHostState(null, ROOT_SYSCTLS);
      for (const ns of [lab.hostNs, lab.lanNs]) {
        await must('ip', ['netns', 'add', ns]);
        await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      await must('ip', [
        '-n',
        lab.hostNs,
        'link',
        'add',
        'eth1',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        lab.lanNs,
      ]);
      await must('ip', ['-n', lab.hostNs, 'addr', 'add', `${HOST_LAN_IP}/24`, 'dev', 'eth1']);
      await must('ip', ['-n', lab.hostNs, 'link', 'set', 'eth1', 'up']);
      await must('ip', ['-n', lab.hostNs, 'route', 'add', 'default', 'via', LAN_ROUTER]);
      await must('ip', ['-n', lab.lanNs, 'addr', 'add', `${LAN_ROUTER}/24`, 'dev', 'eth0']);
      await must('ip', ['-n', lab.lanNs, 'link', 'set', 'eth0', 'up']);
      // Let carrier and operstate settle, so before/after snapshots compare only kvmnet's doing.
      await lab.waitUp(lab.hostNs, 'eth1');
      await lab.waitUp(lab.lanNs, 'eth0');
      // The admin's own objects, which kvmnet must leave exactly as they are.
      await must('ip', ['netns', 'exec', lab.hostNs, 'nft', '-f', '-'], { input: FOREIGN_NFT });
      // (A veth pair: this kernel has no dummy module.)
      await must('ip', [
        '-n',
        lab.hostNs,
        'link',
        'add',
        SPARE_LINK,
        'type',
        'veth',
        'peer',
        'name',
        `${SPARE_LINK}p`,
      ]);
      await must('ip', ['-n', lab.hostNs, 'addr', 'add', SPARE_ADDR, 'dev', SPARE_LINK]);
      await must('ip', ['-n', lab.hostNs, 'link', 'set', `${SPARE_LINK}p`, 'up']);
      await must('ip', ['-n', lab.hostNs, 'link', 'set', SPARE_LINK, 'up']);
      await lab.waitUp(lab.hostNs, SPARE_LINK);
      await must('ip', ['-n', lab.hostNs, 'route', 'add', SPARE_ROUTE, 'via', '203.0.113.254']);
      lab.hostBefore = await recordHostState(lab.hostNs);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  /** The CLI's environment: the lab's dirs, without NODE_EXTRA_CA_CERTS (as bin/kvmnet drops it). */
  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KVMNET_STATE_DIR: this.stateDir,
      KVMNET_RUN_DIR: this.runDir,
    };
    delete env.NODE_EXTRA_CA_CERTS;
    return env;
  }

  /** Runs the real CLI inside the host namespace. */
  kvmnet(...args: string[]): Promise<RunResult> {
    return this.kvmnetEnv({}, ...args);
  }

  /** The CLI with extra environment (e.g. KVMNET_SYSFS). */
  kvmnetEnv(extra: NodeJS.ProcessEnv, ...args: string[]): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.hostNs, process.execPath, join(REPO, 'bin/kvmnet'), ...args], {
      env: { ...this.env(), ...extra },
    });
  }

  /**
   * The CLI as an admin's shell runs it (for the benches): bin/kvmnet through its `#!/bin/sh`
   * launcher, node from PATH; fails with its output unless it exits 0. (kvmnetEnv runs this test
   * run's node on bin/kvmnet, so that tests can set a PATH without node.)
   */
  async kvmnetCommandOk(extra: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
    const r = await run('ip', ['netns', 'exec', this.hostNs, join(REPO, 'bin/kvmnet'), ...args], {
      env: { ...process.env, KVMNET_STATE_DIR: this.stateDir, KVMNET_RUN_DIR: this.runDir, ...extra },
    });
    return Lab.stdoutOk(args, r);
  }

  /** A CLI run's stdout, or an error with its output unless it exited 0. */
  private static stdoutOk(args: string[], r: RunResult): string {
    if (r.code !== 0)
      throw new Error(`kvmnet ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  }

  /** Runs the CLI and fails the test with its output unless it exits 0. */
  kvmnetOk(...args: string[]): Promise<string> {
    return this.kvmnetEnvOk({}, ...args);
  }

  /** kvmnetOk with extra environment. */
  async kvmnetEnvOk(extra: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
    return Lab.stdoutOk(args, await this.kvmnetEnv(extra, ...args));
  }

  async kvmnetJson<T>(...args: string[]): Promise<T> {
    return JSON.parse(await this.kvmnetOk(...args, '--json')) as T;
  }

  exec(ns: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
    return run('ip', ['netns', 'exec', ns, ...args], { timeoutMs });
  }

  /** A guest namespace whose eth0 is a veth plugged into `bridge` of the host namespace. */
  async addGuest(short: string, bridge: string): Promise<string> {
    const ns = `${this.name}-${short}`;
    const hostSide = `vg${this.guestIndex++}`;
    await must('ip', ['netns', 'add', ns]);
    this.guests.push(ns);
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await must('ip', [
      '-n',
      this.hostNs,
      'link',
      'add',
      hostSide,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    await must('ip', ['-n', this.hostNs, 'link', 'set', hostSide, 'master', bridge, 'up']);
    await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await this.waitUp(ns, 'eth0');
    return ns;
  }

  /** Waits (up to 5 s) until a link reports operstate UP. */
  async waitUp(ns: string, dev: string): Promise<void> {
    for (let i = 0; i < 250; i++) {
      const out = await must('ip', ['-n', ns, '-json', 'link', 'show', dev]);
      if ((JSON.parse(out) as Array<{ operstate?: string }>)[0]?.operstate === 'UP') return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${dev} in ${ns} did not come up`);
  }

  /** Runs busybox udhcpc in a guest namespace, sending `hostname`; returns the lease. */
  async dhcp(
    ns: string,
    hostname: string,
  ): Promise<{ ip: string; mask: string; router: string; dns: string }> {
    const r = await this.exec(ns, [
      'busybox',
      'udhcpc',
      '-i',
      'eth0',
      '-f',
      '-q',
      '-n',
      '-t',
      '6',
      '-T',
      '1',
      '-x',
      `hostname:${hostname}`,
      '-s',
      join(REPO, 'test/fixtures/udhcpc.sh'),
    ]);
    const m = /LEASE ip=(\S+) mask=(\S+) router=(\S+) dns=(\S+)/.exec(r.stdout);
    if (r.code !== 0 || !m)
      throw new Error(`udhcpc in ${ns} got no lease (exit ${r.code}): ${r.stdout}${r.stderr}`);
    return { ip: m[1] ?? '', mask: m[2] ?? '', router: m[3] ?? '', dns: m[4] ?? '' };
  }

  /** Starts the echo HTTP server in a namespace; it answers with the caller's address. */
  async server(ns: string, port: number, name: string): Promise<Tracked> {
    const t = Tracked.start('ip', [
      'netns',
      'exec',
      ns,
      process.execPath,
      join(REPO, 'test/fixtures/echo-server.mjs'),
      String(port),
      name,
    ]);
    this.tracked.push(t);
    await t.waitFor(/listening/);
    return t;
  }

  /**
   * Something else on TCP port 53 of `ip` in the host namespace (the address need not exist yet:
   * ip_nonlocal_bind), so that a dnsmasq kvmnet starts there cannot bind: a start that fails
   * half-way. Stopped by destroy, or earlier with its stop().
   */
  async squatDns(ip: string): Promise<Tracked> {
    await must('ip', ['netns', 'exec', this.hostNs, 'sysctl', '-qw', 'net.ipv4.ip_nonlocal_bind=1']);
    const t = Tracked.start('ip', ['netns', 'exec', this.hostNs, 'socat', `TCP-LISTEN:53,bind=${ip}`, '-']);
    this.tracked.push(t);
    await new Promise((r) => setTimeout(r, 300));
    return t;
  }

  /** The LAN's own DHCP server (like an office router's): 192.168.100.100-199, router .254. */
  lanDhcp(): Tracked {
    const t = Tracked.start('ip', [
      'netns',
      'exec',
      this.lanNs,
      'dnsmasq',
      '--no-daemon',
      '--conf-file=/dev/null',
      '--bind-interfaces',
      '--interface=eth0',
      '--except-interface=lo',
      '--port=0',
      '--dhcp-range=192.168.100.100,192.168.100.199,255.255.255.0',
      `--dhcp-leasefile=${join(this.dir, 'lan.leases')}`,
      `--dhcp-option=3,${LAN_ROUTER}`,
    ]);
    this.tracked.push(t);
    return t;
  }

  /** HTTP GET from a namespace with curl; returns the body, or null when the connection fails. */
  async fetch(ns: string, url: string, timeoutS = 3): Promise<string | null> {
    const r = await this.exec(ns, ['curl', '-sS', '--max-time', String(timeoutS), url]);
    return r.code === 0 ? r.stdout : null;
  }

  /** Everything observable about the host namespace and kvmnet's files, for before/after checks. */
  async snapshot(): Promise<Snapshot> {
    const j = async (args: string[]): Promise<unknown[]> => {
      const out = await must('ip', ['-n', this.hostNs, '-json', ...args]);
      return JSON.parse(out || '[]') as unknown[];
    };
    const links = (await j(['-d', 'link', 'show'])).map((l) => withoutTimers(l));
    return {
      links,
      // Addresses as "ifname cidr": IPv6 link-local flags (tentative, lifetimes) change on their own.
      addrs: (await j(['addr', 'show']))
        .flatMap((l) => {
          const x = l as { ifname: string; addr_info?: Array<{ local: string; prefixlen: number }> };
          return (x.addr_info ?? []).map((a) => `${x.ifname} ${a.local}/${a.prefixlen}`);
        })
        .sort(),
      // IPv4 routes of every table (IPv6 link-local routes appear on their own as DAD finishes).
      routes: await j(['-4', 'route', 'show', 'table', 'all']),
      nft: sortTables(await must('ip', ['netns', 'exec', this.hostNs, 'nft', 'list', 'ruleset'])),
      pids: (await this.pids(this.hostNs)).join(','),
      files: await readTree(this.dir),
    };
  }

  async pids(ns: string): Promise<number[]> {
    const r = await run('ip', ['netns', 'pids', ns]);
    return r.stdout
      .split('\n')
      .filter((s) => s.trim() !== '')
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** The host namespace's own nftables ruleset (the admin's table), as teardown expects it. */
  get hostRuleset(): string {
    return this.hostBefore?.nft ?? '';
  }

  /**
   * The host namespace as it is now becomes what teardown expects (after `kvmnet down`). For tests
   * that change the host on purpose (a host bridge, Docker's rules): call it right after making the
   * change and before kvmnet adds anything of its own.
   */
  async acceptHostChanges(): Promise<void> {
    this.hostBefore = await recordHostState(this.hostNs);
  }

  /** No host-namespace comparison at teardown (the root namespace is still checked); say why. */
  skipHostCheck(reason: string): void {
    if (reason.trim() === '') throw new Error('skipHostCheck needs a reason');
    this.hostCheck = false;
  }

  /**
   * Stops tracked servers, deletes guest namespaces, removes kvmnet's ports (`kvmnet port del`) and
   * runs `kvmnet down`, checks the host (the
   * lab's host namespace as recorded, the root namespace unchanged), then ends every process left
   * in the lab's namespaces (by PID) and deletes them. Throws, after cleaning up, if the check fails.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const t of this.tracked) await t.stop().catch(() => {});
    await this.killIn(this.guests);
    // A guest's veth peer in the host namespace (standing in for a tap) goes when the guest's
    // namespace goes, but the kernel removes it a moment after `ip netns del` returns: wait for it,
    // or the host check's first kvmnet command sees the tap and its verification then does not.
    const peers: number[] = [];
    for (const ns of this.guests) {
      const r = await run('ip', ['-n', ns, '-j', 'link', 'show', 'type', 'veth']);
      for (const l of JSON.parse(r.stdout || '[]') as Array<{ link_index?: unknown }>)
        if (typeof l.link_index === 'number') peers.push(l.link_index);
    }
    for (const ns of this.guests) await run('ip', ['netns', 'del', ns]);
    for (let i = 0; peers.length > 0 && i < 50; i++) {
      const r = await run('ip', ['-n', this.hostNs, '-j', 'link']);
      const left = new Set(
        (JSON.parse(r.stdout || '[]') as Array<{ ifindex: number }>).map((l) => l.ifindex),
      );
      if (!peers.some((x) => left.has(x))) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const problems = await this.checkHost().catch((e: unknown) => [`host check failed to run: ${String(e)}`]);
    await this.killIn([this.lanNs, this.hostNs]);
    for (const ns of [this.lanNs, this.hostNs]) await run('ip', ['netns', 'del', ns]);
    await rm(this.dir, { recursive: true, force: true });
    if (problems.length)
      throw new Error(`host check of lab ${this.name} failed:\n  ${problems.join('\n  ')}`);
  }

  private async checkHost(): Promise<string[]> {
    const problems: string[] = [];
    if (this.hostBefore && this.hostCheck) {
      // Whatever the test left running in the host namespace (a daemon, QEMU) except kvmnet's dnsmasq.
      for (const pid of await this.pids(this.hostNs)) {
        const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
        if (comm.trim() !== 'dnsmasq') kill(pid);
      }
      // Everything of kvmnet's goes, by kvmnet: each network with `net undefine --force` (it stops
      // the network and drops its ports and forwards: one command, also with 1,000 forwards), then
      // `down` for anything still running.
      const nets = await this.kvmnet('net', 'list', '--json');
      if (nets.code !== 0) problems.push(`kvmnet net list exited ${nets.code}: ${nets.stderr.trim()}`);
      else {
        for (const n of JSON.parse(nets.stdout || '[]') as Array<{ name: string }>) {
          const d = await this.kvmnet('net', 'undefine', '--force', n.name);
          if (d.code !== 0)
            problems.push(`kvmnet net undefine --force ${n.name} exited ${d.code}: ${d.stderr.trim()}`);
        }
      }
      const r = await this.kvmnet('down');
      if (r.code !== 0) problems.push(`kvmnet down exited ${r.code}: ${r.stderr.trim()}`);
      const after = await recordHostState(this.hostNs);
      problems.push(...diffHostState(this.hostBefore, after).map((d) => `host namespace: ${d}`));
    }
    if (this.rootBefore) {
      const after = await recordHostState(null, ROOT_SYSCTLS);
      problems.push(...diffHostState(this.rootBefore, after).map((d) => `ROOT namespace: ${d}`));
    }
    return problems;
  }

  private async killIn(namespaces: string[]): Promise<void> {
    for (const ns of namespaces) for (const pid of await this.pids(ns).catch(() => [])) kill(pid);
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/**
 * `nft list ruleset` with its tables in name order. nft lists tables in the order they were made,
 * which says nothing about what they do: a table that was deleted and put back (a repair, a test's
 * cleanup) must compare equal to the original.
 */
export function sortTables(ruleset: string): string {
  const tables: string[] = [];
  for (const line of ruleset.split('\n')) {
    if (line.startsWith('table ') || tables.length === 0) tables.push(line);
    else tables[tables.length - 1] += `\n${line}`;
  }
  return tables
    .map((t) => t.replace(/\n+$/, ''))
    .filter((t) => t !== '')
    .sort()
    .map((t) => `${t}\n`)
    .join('');
}

async function readTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      // The state lock's file says who holds or last held the lock (a daemon's repair round takes
      // it every few seconds): a note about the lock, not state.
      if (n === 'kvmnet.lock') continue;
      const p = join(dir, n);
      const s = await stat(p);
      if (s.isDirectory()) {
        out[`${p.slice(root.length)}/`] = '';
        await walk(p);
      } else if (s.isFile()) out[p.slice(root.length)] = await readFile(p, 'utf8');
      else out[p.slice(root.length)] = '(not a regular file: a socket or a fifo)';
    }
  };
  await walk(root);
  return out;
}

/** Drops counters and running timers (bridge gc/hello timers tick on their own). */
function withoutTimers(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutTimers);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k.endsWith('_timer') || k === 'stats' || k === 'stats64') continue;
      out[k] = withoutTimers(x);
    }
    return out;
  }
  return v;
}
