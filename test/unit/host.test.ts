// Host.netState: links, addresses and routes from one `ip -json -details -batch -` run (`addr show`,
// `route show`), read as the separate `ip -json` commands read them. The output below and in
// fixtures/ip/ is iproute2 6.1's (Debian 12).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Exec } from '../../src/host/exec.js';
import { Host, processGone } from '../../src/host/host.js';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURES = join(REPO, 'test/unit/fixtures/ip');

// `addr show` prints each link as `link show` does, with its addresses in addr_info.
const LINKS_ADDRS =
  '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","address":"00:00:00:00:00:00","addr_info":[]},' +
  '{"ifindex":7,"ifname":"virbr0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1500,"operstate":"DOWN","address":"52:54:00:16:54:99","linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":0,"stp_state":0}},' +
  '"addr_info":[{"family":"inet","local":"192.168.122.1","prefixlen":24,"scope":"global"},' +
  '{"family":"inet6","local":"fe80::5054:ff:fe16:5499","prefixlen":64,"scope":"link"}]},' +
  '{"ifindex":8,"ifname":"vnet0","flags":["BROADCAST"],"mtu":1500,"master":"virbr0","operstate":"DOWN","address":"fe:54:00:00:00:11","linkinfo":{"info_kind":"tun","info_slave_kind":"bridge","info_slave_data":{"isolated":true}},"addr_info":[]}]';
const ROUTES =
  '[{"type":"unicast","dst":"default","gateway":"10.5.0.1","dev":"d0","protocol":"boot","scope":"global","metric":100,"flags":[]},' +
  '{"type":"unicast","dst":"10.5.0.0/24","dev":"d0","protocol":"kernel","scope":"link","prefsrc":"10.5.0.2","flags":[]},' +
  '{"type":"unicast","dst":"10.6.0.0/24","gateway":"10.5.0.1","dev":"d0","protocol":"static","scope":"global","flags":[]}]';

function fakeIp(stdout: string, seen: Array<{ args: string[]; input?: string }>): Exec {
  return {
    run(_cmd, args, opts = {}) {
      seen.push({ args, ...(opts.input === undefined ? {} : { input: opts.input }) });
      return Promise.resolve({ code: 0, stdout, stderr: '' });
    },
  };
}

describe('Host.netState', () => {
  test('one ip process answers links, IPv4 addresses and routes', async () => {
    const seen: Array<{ args: string[]; input?: string }> = [];
    const host = new Host(fakeIp(`${LINKS_ADDRS}\n${ROUTES}\n`, seen));
    const s = await host.netState();
    assert.deepEqual(seen, [
      { args: ['-json', '-details', '-batch', '-'], input: 'addr show\nroute show\n' },
    ]);
    assert.deepEqual(
      s.links.map((l) => [l.ifname, l.kind, l.master, l.stpState, l.isolated]),
      [
        ['lo', undefined, undefined, undefined, undefined],
        ['virbr0', 'bridge', undefined, 0, undefined],
        ['vnet0', 'tun', 'virbr0', undefined, true],
      ],
    );
    assert.deepEqual(
      s.addrs,
      [{ ifname: 'virbr0', cidr: '192.168.122.1/24', dynamic: false }],
      'IPv6 skipped',
    );
    // -details adds the default protocol (boot) and scope (global): dropped, as plain `ip -json route`.
    assert.deepEqual(s.routes, [
      { dst: 'default', gateway: '10.5.0.1', dev: 'd0', metric: 100 },
      { dst: '10.5.0.0/24', dev: 'd0', protocol: 'kernel', scope: 'link', prefsrc: '10.5.0.2' },
      { dst: '10.6.0.0/24', gateway: '10.5.0.1', dev: 'd0', protocol: 'static' },
    ]);
  });

  test('a batch of changes lists the host after them in the same process', async () => {
    const seen: Array<{ args: string[]; input?: string }> = [];
    const host = new Host(fakeIp(`${LINKS_ADDRS}\n${ROUTES}\n`, seen));
    const s = await host.ipBatchListed(['link add name virbr0 type bridge', 'link set dev virbr0 up']);
    assert.deepEqual(seen, [
      {
        args: ['-json', '-details', '-batch', '-'],
        input: 'link add name virbr0 type bridge\nlink set dev virbr0 up\naddr show\nroute show\n',
      },
    ]);
    assert.deepEqual(await new Host(fakeIp(`${LINKS_ADDRS}\n${ROUTES}\n`, [])).netState(), s);
  });

  test('an answer missing a command is an error, not an empty host', async () => {
    const host = new Host(fakeIp(`${LINKS_ADDRS}\n`, []));
    await assert.rejects(host.netState(), /ip -batch gave 1 answers to 2 commands/);
  });

  // Golden: a namespace with a bridge, an isolated tap plugged into it, an unplugged tap and a veth
  // with a static and a dynamic address, listed by real iproute2 in the same moment both ways.
  test('real output: the links of `addr show` are those of `ip -json -details link show`', async () => {
    const batch = readFileSync(join(FIXTURES, 'batch-addr-route.json'), 'utf8');
    const s = await new Host(fakeIp(batch, [])).netState();
    const links = await new Host(fakeIp(readFileSync(join(FIXTURES, 'link-show.json'), 'utf8'), [])).links();
    assert.deepEqual(s.links, links);
    assert.deepEqual(
      s.links.map((l) => [l.ifname, l.kind, l.master, l.stpState, l.forwardDelay, l.isolated, l.address]),
      [
        ['lo', undefined, undefined, undefined, undefined, undefined, '00:00:00:00:00:00'],
        ['virbr0', 'bridge', undefined, 0, 0, undefined, '52:54:00:16:54:99'],
        ['vnet0', 'tun', 'virbr0', undefined, undefined, true, 'fe:54:00:00:00:11'],
        ['vnet1', 'tun', undefined, undefined, undefined, undefined, 'fe:54:00:00:00:12'],
        ['eth1p', 'veth', undefined, undefined, undefined, undefined, '02:00:00:00:00:02'],
        ['eth1', 'veth', undefined, undefined, undefined, undefined, '02:00:00:00:00:01'],
      ],
    );
    assert.deepEqual(s.addrs, [
      { ifname: 'lo', cidr: '127.0.0.1/8', dynamic: false },
      { ifname: 'virbr0', cidr: '192.168.122.1/24', dynamic: false },
      { ifname: 'eth1', cidr: '10.5.0.2/24', dynamic: false },
      { ifname: 'eth1', cidr: '10.5.0.9/24', dynamic: true },
    ]);
    assert.deepEqual(s.routes, [
      { dst: 'default', gateway: '10.5.0.1', dev: 'eth1', metric: 100 },
      { dst: '10.5.0.0/24', dev: 'eth1', protocol: 'kernel', scope: 'link', prefsrc: '10.5.0.2' },
      { dst: '10.6.0.0/24', gateway: '10.5.0.1', dev: 'eth1', protocol: 'static' },
      { dst: '192.168.122.0/24', dev: 'virbr0', protocol: 'kernel', scope: 'link', prefsrc: '192.168.122.1' },
    ]);
  });
});

/**
 * A zombie and its living parent: sh starts a short child, prints its pid, then becomes `sleep`,
 * which never reaps it. The child outlives sh's exec; should it still be reaped before it shows as
 * a zombie (its /proc entry gone first), a new pair is made, up to 5 times.
 */
async function zombie(): Promise<{ parent: ChildProcess; child: number }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const first = await new Promise<string>((res) =>
      parent.stdout?.once('data', (d: Buffer) => res(String(d))),
    );
    const child = Number(first.trim());
    assert.ok(child > 0, first);
    for (let i = 0; i < 300; i++) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${child}/stat`, 'utf8');
      } catch {
        break; // reaped already: try again
      }
      if (/\) Z /.test(stat)) return { parent, child };
      await new Promise((r) => setTimeout(r, 10));
    }
    parent.kill('SIGKILL');
    await new Promise((r) => parent.once('exit', r));
  }
  throw new Error('no zombie in 5 attempts');
}

describe('processGone', () => {
  test('a running process is not gone; a zombie and a reaped process are', async () => {
    const { parent, child } = await zombie();
    try {
      assert.equal(await processGone(child), true, 'a zombie has closed its files');
      assert.equal(await processGone(parent.pid!), false, 'the running sleep');
    } finally {
      parent.kill('SIGKILL');
      await new Promise((r) => parent.once('exit', r));
    }
    assert.equal(await processGone(parent.pid!), true, 'reaped');
  });
});
