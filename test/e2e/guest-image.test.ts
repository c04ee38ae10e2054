// Smoke test for the guest harness (test/lib/guest.ts): boots the cached busybox guest in a private
// namespace against a hand-started dnsmasq and checks DHCP (incl. the hostname option), the serial command
// channel and the guest's HTTP server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { bootGuest, ensureGuestImage, type Guest, type GuestLease } from '../lib/guest.js';

const NS = `hg-${process.pid}`;
const BRIDGE = 'hgbr0';
const TAP = 'hgtap0';
const HOSTNAME = `hg-guest-${process.pid}`;
const MAC = '52:54:00:99:00:42';

let tmp: string | undefined;
let dnsmasq: ChildProcess | undefined;
let dnsmasqLog = '';
let guest: Guest | undefined;
let lease: GuestLease | undefined;
let nsCreated = false;
let tornDown = false;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

const inNs = (...args: string[]): string => sh('ip', ['netns', 'exec', NS, ...args]);

function killSync(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Last-resort cleanup if the process exits without running `after` (e.g. a crash). */
function teardownSync(): void {
  if (tornDown) return;
  tornDown = true;
  if (guest?.alive()) killSync(guest.pid);
  if (dnsmasq?.exitCode === null && dnsmasq.signalCode === null) killSync(dnsmasq.pid);
  if (nsCreated) spawnSync('ip', ['netns', 'del', NS]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', teardownSync);

async function stopDnsmasq(): Promise<void> {
  const d = dnsmasq;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => d.once('close', () => resolve()));
  d.kill('SIGTERM');
  const timer = setTimeout(() => d.kill('SIGKILL'), 3000);
  await closed;
  clearTimeout(timer);
}

before(
  async () => {
    // Build (or reuse) the image first so a slow first build does not eat into the boot timeouts.
    await ensureGuestImage();

    tmp = mkdtempSync(path.join(tmpdir(), 'hg-guest-test-'));
    sh('ip', ['netns', 'add', NS]);
    nsCreated = true;
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    inNs('ip', 'addr', 'add', '10.99.0.1/24', 'dev', BRIDGE);
    inNs('ip', 'link', 'set', BRIDGE, 'up');
    inNs('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap');
    inNs('ip', 'link', 'set', TAP, 'master', BRIDGE);
    inNs('ip', 'link', 'set', TAP, 'up');

    const d = spawn(
      'ip',
      [
        'netns',
        'exec',
        NS,
        'dnsmasq',
        '--no-daemon',
        '--conf-file=/dev/null',
        '--user=root',
        '--bind-interfaces',
        `--interface=${BRIDGE}`,
        '--except-interface=lo',
        '--no-hosts',
        '--no-resolv',
        '--dhcp-range=10.99.0.50,10.99.0.60,255.255.255.0,1h',
        '--dhcp-authoritative',
        `--dhcp-leasefile=${path.join(tmp, 'leases')}`,
        `--pid-file=${path.join(tmp, 'dnsmasq.pid')}`,
        '--local=/hg.test/',
        '--host-record=web.hg.test,10.99.0.1',
        '--log-dhcp',
        '--log-facility=-',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    dnsmasq = d;
    d.stdout?.on('data', (b: Buffer) => (dnsmasqLog += b.toString()));
    d.stderr?.on('data', (b: Buffer) => (dnsmasqLog += b.toString()));
    await new Promise<void>((resolve, reject) => {
      d.once('spawn', resolve);
      d.once('error', reject);
    });

    const t0 = Date.now();
    guest = await bootGuest({
      netns: NS,
      tap: TAP,
      mac: MAC,
      hostname: HOSTNAME,
      logFile: path.join(tmp, 'serial.log'),
    });
    lease = await guest.lease(60_000);
    await guest.waitFor(/KVMNET-SHELL-READY/, 30_000);
    console.log(`# guest ${HOSTNAME} got ${lease.ip}/${lease.mask} and a shell after ${Date.now() - t0} ms`);
  },
  { timeout: 15 * 60_000 },
);

after(async () => {
  try {
    await guest?.kill();
    await stopDnsmasq();
  } finally {
    teardownSync();
  }
});

const dnsmasqDiag = (): string => `\n--- dnsmasq ---\n${dnsmasqLog.slice(-3000)}`;

void test('guest gets a lease from the configured range', () => {
  assert.ok(lease, 'no lease');
  const m = /^10\.99\.0\.(\d+)$/.exec(lease.ip);
  assert.ok(m, `lease ip ${lease.ip} not in 10.99.0.0/24`);
  const host = Number(m[1]);
  assert.ok(host >= 50 && host <= 60, `lease ip ${lease.ip} outside 10.99.0.50-60`);
  assert.equal(lease.mask, 24);
  assert.equal(lease.router, '10.99.0.1');
  assert.equal(lease.dns, '10.99.0.1');
});

void test('the DHCP request carried the hostname option', async () => {
  assert.ok(tmp && lease);
  const leaseFile = path.join(tmp, 'leases');
  let content = '';
  for (let i = 0; i < 50 && !content.includes(HOSTNAME); i++) {
    content = readFileSync(leaseFile, 'utf8');
    if (!content.includes(HOSTNAME)) await new Promise((r) => setTimeout(r, 100));
  }
  const line = content.split('\n').find((l) => l.includes(lease?.ip ?? '?'));
  assert.ok(line, `no lease for ${lease.ip} in ${leaseFile}:\n${content}${dnsmasqDiag()}`);
  assert.match(line, new RegExp(`\\b${MAC}\\b.*\\b${HOSTNAME}\\b`, 'i'));
});

void test('serial shell runs commands and reports exit codes', async () => {
  assert.ok(guest);
  const ping = await guest.run('ping -c 1 -W 2 10.99.0.1');
  assert.equal(ping.code, 0, `ping failed:\n${ping.output}`);
  assert.match(ping.output, /1 packets received/);

  const fail = await guest.run('false');
  assert.notEqual(fail.code, 0);
  const exit7 = await guest.run('echo before; exit 7');
  assert.deepEqual(exit7, { code: 7, output: 'before\n' });

  const hostname = await guest.run('hostname');
  assert.equal(hostname.output.trim(), HOSTNAME);

  const quoting = await guest.run(`printf '%s|%s\\n' "a  b" 'c\td'; echo "tab:\t" >&2`);
  assert.equal(quoting.code, 0);
  assert.equal(quoting.output, 'a  b|c\td\ntab:\t\n');

  const long = 'x'.repeat(3000);
  const big = await guest.run(`s=${long}; echo \${#s}`);
  assert.deepEqual(big, { code: 0, output: '3000\n' });

  const ns = await guest.run('nslookup web.hg.test 10.99.0.1');
  assert.equal(ns.code, 0, ns.output);
  assert.match(ns.output, /Address:?\s+10\.99\.0\.1\b/);

  const resolv = await guest.run('cat /etc/resolv.conf; ip route');
  assert.match(resolv.output, /nameserver 10\.99\.0\.1/);
  assert.match(resolv.output, /default via 10\.99\.0\.1 dev eth0/);
});

void test('guest serves its hostname over HTTP', () => {
  assert.ok(lease);
  // Debian's busybox-static wget has no -T (and segfaults on it): bound it with timeout(1) instead.
  const body = inNs('timeout', '10', 'busybox', 'wget', '-qO-', `http://${lease.ip}/`);
  assert.match(body, new RegExp(`hello from ${HOSTNAME}`));
});

void test('guest can fetch from the host side by name', async () => {
  assert.ok(guest && tmp);
  // busybox httpd in the namespace, serving a file, reached by the guest via a dnsmasq-resolved name.
  const dir = path.join(tmp, 'www');
  sh('mkdir', ['-p', dir]);
  sh('sh', ['-c', `echo host-side-ok > ${dir}/index.html`]);
  const httpd = spawn(
    'ip',
    ['netns', 'exec', NS, 'busybox', 'httpd', '-f', '-p', '10.99.0.1:8080', '-h', dir],
    {
      stdio: 'ignore',
    },
  );
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await guest.run('timeout 10 wget -qO- http://web.hg.test:8080/');
    assert.deepEqual(r, { code: 0, output: 'host-side-ok\n' });
  } finally {
    const closed = new Promise<void>((resolve) => httpd.once('close', () => resolve()));
    httpd.kill('SIGKILL');
    await closed;
  }
});
