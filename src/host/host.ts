// Host adapter: reads and changes kernel state through iproute2, nft, /proc and dnsmasq.
// Everything here acts on the network namespace kvmnet runs in; nothing else in the program
// runs processes or touches /proc and /sys.
import { access, constants, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { failure } from '../model/errors.js';
import { realExec, type Exec } from './exec.js';

const foundOnPath = new Map<string, string>();

/** Whether an executable of this name is on PATH (a few access calls, no process). */
export async function onPath(tool: string): Promise<boolean> {
  const path = process.env.PATH ?? '';
  // A tool once found stays found for this process (a long-running `kvmnet serve` asks on every
  // start); one removed since fails at its spawn, which names it. Not found is asked again.
  if (foundOnPath.get(tool) === path) return true;
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, tool), constants.X_OK);
      foundOnPath.set(tool, path);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

/** The host's links, addresses and routes, as one `ip -json -details -batch -` lists them. */
export interface NetState {
  links: LinkInfo[];
  addrs: AddrInfo[];
  routes: RouteInfo[];
}

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  address: string;
  flags: string[];
  operstate: string;
  master?: string;
  /** linkinfo.info_kind, e.g. "bridge", "veth", "tun". */
  kind?: string;
  stpState?: number;
  forwardDelay?: number;
  mtu: number;
  /** A bridge port's isolation flag (bridge_slave isolated). */
  isolated?: boolean;
}

export interface AddrInfo {
  ifname: string;
  cidr: string;
  dynamic: boolean;
  broadcast?: string;
  /** Seconds, for dynamic (DHCP) addresses. */
  validLft?: number;
  preferredLft?: number;
}

export interface RouteInfo {
  dst: string;
  dev?: string;
  gateway?: string;
  protocol?: string;
  metric?: number;
  scope?: string;
  prefsrc?: string;
}

export interface NeighInfo {
  dst: string;
  lladdr?: string;
  state: string[];
}

interface IpLinkJson {
  ifname: string;
  ifindex: number;
  address?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  mtu?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: { stp_state?: number; forward_delay?: number };
    info_slave_data?: { isolated?: boolean };
  };
}

interface IpAddrJson {
  ifname: string;
  addr_info?: Array<{
    family: string;
    local: string;
    prefixlen: number;
    dynamic?: boolean;
    broadcast?: string;
    valid_life_time?: number;
    preferred_life_time?: number;
  }>;
}

/** A link's counters as the kernel reports them (bytes and packets since the link was made). */
export interface LinkStats {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export class Host {
  constructor(readonly exec: Exec = realExec) {}

  private async must(cmd: string, args: string[], input?: string): Promise<string> {
    const r = await this.exec.run(cmd, args, input === undefined ? {} : { input });
    if (r.code !== 0) {
      const msg = firstLines(r.stderr || r.stdout);
      throw failure('host-command-failed', `${cmd} ${args.join(' ')} failed: ${msg}`, {
        hint:
          r.code === 127
            ? `install ${cmd} (see README)`
            : `the ${cmd} command above was refused by the kernel or the tool`,
      });
    }
    return r.stdout;
  }

  async links(): Promise<LinkInfo[]> {
    return parseLinks(await this.must('ip', ['-json', '-details', 'link', 'show']));
  }

  /**
   * One link by name (`ip -json -details link show dev NAME`), or null when there is none: what a
   * port change on a running network observes of its tap instead of listing every link.
   */
  async link(name: string): Promise<LinkInfo | null> {
    const r = await this.exec.run('ip', ['-json', '-details', 'link', 'show', 'dev', name]);
    if (r.code !== 0) {
      if (/does not exist/i.test(r.stderr)) return null;
      throw failure('host-command-failed', `ip link show dev ${name} failed: ${firstLines(r.stderr)}`, {
        hint: 'the ip command above was refused by the kernel or the tool',
      });
    }
    return parseLinks(r.stdout)[0] ?? null;
  }

  /**
   * Links, IPv4 addresses and IPv4 routes in one `ip -batch` run (one process instead of three:
   * process start-up is most of what an observation costs). `addr show` lists every link with the
   * same fields as `link show` (-details included) plus its addresses, so links and addresses come
   * from one link dump: a `link show` line would make ip dump and print every link a second time
   * (about 1.3 KB per tap with -details, which grows with the ports).
   */
  async netState(): Promise<NetState> {
    return this.ipBatchListed([]);
  }

  /**
   * `ip -batch` of `lines` (as ipBatch: the first failing line fails it), then in the same process
   * the listing netState() makes: the links, addresses and routes as the lines left them, one
   * process fewer than a batch and a listing after it.
   */
  async ipBatchListed(lines: string[]): Promise<NetState> {
    const input = [...lines, 'addr show', 'route show'].join('\n') + '\n';
    const out = await this.must('ip', ['-json', '-details', '-batch', '-'], input);
    // One JSON array per listing command, each on its own line; the changes print nothing.
    const parts = out.split('\n').filter((l) => l.trim() !== '');
    if (parts.length !== 2)
      throw failure('host-command-failed', `ip -batch gave ${parts.length} answers to 2 commands`, {
        hint: 'an iproute2 with JSON output (Debian 10 or later) is needed',
      });
    const withAddrs = JSON.parse(parts[0] || '[]') as Array<IpLinkJson & IpAddrJson>;
    return {
      links: withAddrs.map(linkOf),
      addrs: addrsOf(withAddrs),
      routes: parseRoutes(parts[1] ?? ''),
    };
  }

  /** Every link's byte and packet counters (`ip -statistics link`), for rates on the web page. */
  async linkStats(): Promise<Map<string, LinkStats>> {
    const raw = JSON.parse(
      (await this.must('ip', ['-json', '-statistics', 'link', 'show'])) || '[]',
    ) as Array<{
      ifname: string;
      stats64?: { rx?: { bytes?: number; packets?: number }; tx?: { bytes?: number; packets?: number } };
    }>;
    return new Map(
      raw.map((l) => [
        l.ifname,
        {
          rxBytes: l.stats64?.rx?.bytes ?? 0,
          txBytes: l.stats64?.tx?.bytes ?? 0,
          rxPackets: l.stats64?.rx?.packets ?? 0,
          txPackets: l.stats64?.tx?.packets ?? 0,
        },
      ]),
    );
  }

  async addrs(): Promise<AddrInfo[]> {
    return parseAddrs(await this.must('ip', ['-json', '-4', 'addr', 'show']));
  }

  async routes(): Promise<RouteInfo[]> {
    return parseRoutes(await this.must('ip', ['-json', '-4', 'route', 'show']));
  }

  async neighbors(dev: string): Promise<NeighInfo[]> {
    const r = await this.exec.run('ip', ['-json', '-4', 'neigh', 'show', 'dev', dev]);
    if (r.code !== 0) return [];
    return (JSON.parse(r.stdout || '[]') as NeighInfo[]).map((n) => ({
      dst: n.dst,
      ...(n.lladdr ? { lladdr: n.lladdr } : {}),
      state: n.state,
    }));
  }

  /**
   * Whether a NIC is wireless (802.11 cannot carry frames from foreign MACs, so it cannot be a
   * bridge port). Reads sysfs; KVMNET_SYSFS points tests at a fake tree.
   */
  async isWireless(ifname: string): Promise<boolean> {
    const root = process.env.KVMNET_SYSFS ?? '/sys';
    for (const leaf of ['wireless', 'phy80211']) {
      try {
        await access(`${root}/class/net/${ifname}/${leaf}`);
        return true;
      } catch {
        /* not there */
      }
    }
    return false;
  }

  /** Pings `target` out of `dev` until it answers or `timeoutS` passes. */
  async probe(
    target: string,
    dev: string,
    timeoutS: number,
  ): Promise<{ ok: boolean; tries: number; last: string }> {
    const deadline = Date.now() + timeoutS * 1000;
    let tries = 0;
    let last: string;
    do {
      tries++;
      const r = await this.exec.run('ping', ['-n', '-c', '1', '-W', '1', '-I', dev, target]);
      if (r.code === 0) return { ok: true, tries, last: r.stdout };
      if (r.code === 127)
        throw failure('missing-tool', 'ping is not installed', { hint: 'apt-get install iputils-ping' });
      last = (r.stdout + r.stderr).trim().split('\n').slice(-2).join(' / ');
    } while (Date.now() < deadline);
    return { ok: false, tries, last };
  }

  /** Runs `ip -batch -`: stops at the first failing line and reports it. */
  async ipBatch(lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.must('ip', ['-batch', '-'], lines.join('\n') + '\n');
  }

  /** `ip -force -batch -`: every line is tried even after one fails (restores and undos). */
  async ipBatchForce(lines: string[]): Promise<string> {
    if (lines.length === 0) return '';
    const r = await this.exec.run('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n' });
    return r.code === 0 ? '' : (r.stderr || r.stdout).trim();
  }

  /** `nft -j list table inet kvmnet`, or null when the table does not exist. */
  async nftListTable(family: string, table: string): Promise<unknown> {
    const r = await this.exec.run('nft', ['-j', 'list', 'table', family, table]);
    if (r.code !== 0) {
      if (/No such file or directory|does not exist/i.test(r.stderr)) return null;
      if (r.code === 127)
        throw failure('missing-tool', 'nft is not installed', { hint: 'apt-get install nftables' });
      throw failure('nft-failed', `nft list table ${family} ${table} failed: ${r.stderr.trim()}`);
    }
    return JSON.parse(r.stdout) as unknown;
  }

  /**
   * Whether the kernel accepts an nftables flowtable: `nft -c` of a throwaway table with one
   * (check mode: the kernel validates the transaction and aborts it, so nothing changes).
   */
  async nftFlowtableSupport(): Promise<boolean> {
    const probe =
      'table inet kvmnet_probe {\n  flowtable f { hook ingress priority 0; devices = { "lo" }; }\n}\n';
    const r = await this.exec.run('nft', ['-c', '-f', '-'], { input: probe });
    return r.code === 0;
  }

  /** Applies an nft script as one transaction: all of it or nothing. */
  async nftApply(script: string): Promise<void> {
    if (script.trim() === '') return;
    await this.must('nft', ['-f', '-'], script);
  }

  async sysctlGet(key: string): Promise<string> {
    return (await readFile(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8')).trim();
  }

  async sysctlSet(key: string, value: string): Promise<void> {
    await writeFile(`/proc/sys/${key.replace(/\./g, '/')}`, value + '\n');
  }

  /** The argv of a live process, or null when no such process exists. */
  async processArgs(pid: number): Promise<string[] | null> {
    try {
      const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (raw === '') return null; // zombie
      return raw.split('\0').filter((s) => s !== '');
    } catch {
      return null;
    }
  }

  /** Starts dnsmasq with a conf file; dnsmasq reports start-up errors (e.g. cannot bind) before it detaches. */
  async startDnsmasq(confFile: string, pidFile: string): Promise<number> {
    const r = await this.exec.run('dnsmasq', [`--conf-file=${confFile}`]);
    if (r.code !== 0) {
      const msg =
        r.code === 127 ? 'dnsmasq is not installed' : (r.stderr || r.stdout).trim().replace(/^dnsmasq: /, '');
      throw failure('dnsmasq-failed', `dnsmasq did not start: ${msg}`, {
        hint:
          r.code === 127
            ? 'apt-get install dnsmasq-base'
            : 'is another DNS/DHCP server bound to this bridge or port 53/67?',
      });
    }
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0)
      throw failure('dnsmasq-failed', `dnsmasq wrote no usable pid to ${pidFile}`);
    return pid;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  async stopProcess(pid: number, graceMs = 3000): Promise<void> {
    if (!signal(pid, 'SIGTERM')) return;
    const deadline = Date.now() + graceMs;
    // dnsmasq exits within a few ms of SIGTERM: look often at first, then every 20 ms.
    for (let wait = 1; Date.now() < deadline; wait = Math.min(wait * 2, 20)) {
      if (await processGone(pid)) return;
      await sleep(wait);
    }
    signal(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !(await processGone(pid)); i++) await sleep(20);
  }

  sighup(pid: number): boolean {
    return signal(pid, 'SIGHUP');
  }
}

/**
 * Whether a process has let go of everything it held: no /proc entry, or a zombie (state Z or X).
 * An empty /proc/PID/cmdline is not enough: the kernel drops a process's memory (and with it the
 * command line) before it closes its files, so for a moment an exiting dnsmasq has no command line
 * and still holds its sockets, and a new one started then fails with "Address already in use".
 */
export async function processGone(pid: number): Promise<boolean> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  const state = procStatFields(stat)[0];
  return state === 'Z' || state === 'X';
}

/**
 * The fields of a /proc/PID/stat text after `PID (COMM)`: [0] the state, [19] the start time. COMM
 * may hold spaces and parentheses, so the fields start after the last ')'.
 */
export function procStatFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The error lines of a tool's output without nft's caret lines, joined on one line. */
function firstLines(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^[\^~ ]+$/.test(l))
    .slice(0, 2)
    .join(' / ');
}

function parseLinks(text: string): LinkInfo[] {
  return (JSON.parse(text || '[]') as IpLinkJson[]).map(linkOf);
}

/** A link as `ip -json -details link show` (or `addr show`) prints it. */
function linkOf(l: IpLinkJson): LinkInfo {
  const info: LinkInfo = {
    ifname: l.ifname,
    ifindex: l.ifindex,
    address: l.address ?? '',
    flags: l.flags ?? [],
    operstate: l.operstate ?? 'UNKNOWN',
    mtu: l.mtu ?? 0,
  };
  if (l.master !== undefined) info.master = l.master;
  const kind = l.linkinfo?.info_kind;
  if (kind !== undefined) info.kind = kind;
  const d = l.linkinfo?.info_data;
  if (d?.stp_state !== undefined) info.stpState = d.stp_state;
  if (d?.forward_delay !== undefined) info.forwardDelay = d.forward_delay;
  const sd = l.linkinfo?.info_slave_data;
  if (sd?.isolated !== undefined) info.isolated = sd.isolated;
  return info;
}

/** IPv4 addresses (an `addr show` without -4 also lists IPv6 ones: they are skipped). */
function parseAddrs(text: string): AddrInfo[] {
  return addrsOf(JSON.parse(text || '[]') as IpAddrJson[]);
}

function addrsOf(raw: IpAddrJson[]): AddrInfo[] {
  const out: AddrInfo[] = [];
  for (const l of raw) {
    for (const a of l.addr_info ?? []) {
      if (a.family === 'inet')
        out.push({ ifname: l.ifname, cidr: `${a.local}/${a.prefixlen}`, dynamic: a.dynamic === true });
    }
  }
  return out;
}

/**
 * Routes as plain `ip -json route` shows them: with -details (netState) ip also prints the default
 * protocol (boot) and scope (global), which are dropped here so both read the same.
 */
function parseRoutes(text: string): RouteInfo[] {
  const raw = JSON.parse(text || '[]') as RouteInfo[];
  const defaults: Partial<RouteInfo> = { protocol: 'boot', scope: 'global' };
  return raw.map((r) => {
    const out: RouteInfo = { dst: r.dst };
    for (const k of ['dev', 'gateway', 'protocol', 'scope', 'prefsrc'] as const)
      if (r[k] !== undefined && r[k] !== defaults[k]) out[k] = r[k];
    if (r.metric !== undefined) out.metric = r.metric;
    return out;
  });
}
