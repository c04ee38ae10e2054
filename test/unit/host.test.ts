// Host.netState: links, addresses and routes from one `ip -json -details -batch -` run, read as the
// three separate `ip -json` commands read them. The output below is iproute2 6.1's (Debian 12).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Exec } from '../../src/host/exec.js';
import { Host } from '../../src/host/host.js';

const LINKS =
  '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","address":"00:00:00:00:00:00"},' +
  '{"ifindex":7,"ifname":"virbr0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1500,"operstate":"DOWN","address":"52:54:00:16:54:99","linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":0,"stp_state":0}}},' +
  '{"ifindex":8,"ifname":"vnet0","flags":["BROADCAST"],"mtu":1500,"master":"virbr0","operstate":"DOWN","address":"fe:54:00:00:00:11","linkinfo":{"info_kind":"tun","info_slave_kind":"bridge","info_slave_data":{"isolated":true}}}]';
const ADDRS =
  '[{"ifindex":7,"ifname":"virbr0","addr_info":[{"family":"inet","local":"192.168.122.1","prefixlen":24,"scope":"global"},' +
  '{"family":"inet6","local":"fe80::5054:ff:fe16:5499","prefixlen":64,"scope":"link"}]}]';
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
    const host = new Host(fakeIp(`${LINKS}\n${ADDRS}\n${ROUTES}\n`, seen));
    const s = await host.netState();
    assert.deepEqual(seen, [
      { args: ['-json', '-details', '-batch', '-'], input: 'link show\naddr show\nroute show\n' },
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

  test('an answer missing a command is an error, not an empty host', async () => {
    const host = new Host(fakeIp(`${LINKS}\n${ADDRS}\n`, []));
    await assert.rejects(host.netState(), /ip -batch gave 2 answers to 3 commands/);
  });
});
