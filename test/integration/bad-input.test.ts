// Issue 2 acceptance 5: every bad input gets one `error:` line naming the field, a hint, exit 2,
// and changes nothing on the host or in the stored state. Also: a start that fails half-way
// (dnsmasq cannot bind) rolls back completely.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

describe('bad input', () => {
  let lab: Lab;

  before(async () => {
    lab = await Lab.create('bad');
    // Something the host already uses: an address on a veth and a route.
    await must('ip', ['-n', lab.hostNs, 'link', 'add', 'vx0', 'type', 'veth', 'peer', 'name', 'vx1']);
    await must('ip', ['-n', lab.hostNs, 'addr', 'add', '10.99.0.1/24', 'dev', 'vx0']);
    await must('ip', ['-n', lab.hostNs, 'route', 'add', '172.20.0.0/16', 'via', '192.168.100.254']);
    await lab.acceptHostChanges(); // the host's own interface and route, set up on purpose
    await lab.kvmnetOk('up');
    await lab.kvmnetOk('net', 'define', 'lab2', '--subnet', '10.10.0.0/24', '--bridge', 'virbr7');
  });
  after(async () => {
    await lab.destroy();
  });

  const yamlCase =
    (body: string): (() => Promise<string[]>) =>
    async () => {
      const f = join(lab.dir, 'bad.yaml');
      await writeFile(f, body);
      return ['apply', '-f', f];
    };

  const cases: Array<{ name: string; args: string[] | (() => Promise<string[]>); error: RegExp }> = [
    {
      name: 'unknown mode',
      args: ['net', 'define', 'x', '--mode', 'bogus', '--subnet', '10.1.0.0/24'],
      error: /mode "bogus" is not known/,
    },
    {
      name: 'malformed CIDR',
      args: ['net', 'define', 'x', '--subnet', '10.1.0/24'],
      error: /subnet "10\.1\.0\/24" is not an IPv4 CIDR/,
    },
    {
      name: 'prefix out of range',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/33'],
      error: /subnet "10\.1\.0\.0\/33" is not an IPv4 CIDR/,
    },
    {
      name: 'host bits set',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.5/24'],
      error: /subnet "10\.1\.0\.5\/24" has host bits set/,
    },
    {
      name: 'DHCP range outside the subnet',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--dhcp-range', '10.2.0.10-10.2.0.20'],
      error: /dhcp range 10\.2\.0\.10-10\.2\.0\.20: start 10\.2\.0\.10 is outside subnet 10\.1\.0\.0\/24/,
    },
    {
      name: 'DHCP range containing the gateway',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--dhcp-range', '10.1.0.1-10.1.0.20'],
      error: /dhcp range 10\.1\.0\.1-10\.1\.0\.20 contains the gateway 10\.1\.0\.1/,
    },
    {
      name: 'DHCP range reversed',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--dhcp-range', '10.1.0.50-10.1.0.20'],
      error: /dhcp range 10\.1\.0\.50-10\.1\.0\.20 is reversed/,
    },
    {
      name: 'DHCP range and --no-dhcp',
      args: [
        'net',
        'define',
        'x',
        '--subnet',
        '10.1.0.0/24',
        '--dhcp-range',
        '10.1.0.50-10.1.0.60',
        '--no-dhcp',
      ],
      error: /--dhcp-range and --no-dhcp contradict each other/,
    },
    {
      name: 'subnet overlapping another kvmnet network',
      args: ['net', 'define', 'x', '--subnet', '192.168.122.128/25'],
      error: /subnet 192\.168\.122\.128\/25 of "x" overlaps "default" \(192\.168\.122\.0\/24\)/,
    },
    {
      name: 'subnet overlapping a host address',
      args: ['net', 'define', 'x', '--subnet', '10.99.0.0/16'],
      error:
        /subnet 10\.99\.0\.0\/16 of "x" overlaps 10\.99\.0\.0\/24 \(address 10\.99\.0\.1\/24 on vx0\) on this host/,
    },
    {
      name: 'subnet overlapping a host route',
      args: ['net', 'define', 'x', '--subnet', '172.20.5.0/24'],
      error:
        /subnet 172\.20\.5\.0\/24 of "x" overlaps 172\.20\.0\.0\/16 \(route 172\.20\.0\.0\/16 via 192\.168\.100\.254 dev eth1\)/,
    },
    {
      name: 'bridge name over 15 bytes',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--bridge', 'abcdefghijklmnop'],
      error: /bridge name "abcdefghijklmnop" is 16 bytes long/,
    },
    {
      name: 'bridge name with a bad character',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--bridge', 'br/0'],
      error: /bridge name "br\/0" has characters outside \[A-Za-z0-9_.-\]/,
    },
    {
      name: 'bridge name of an existing interface',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--bridge', 'eth1'],
      error: /interface eth1 already exists on this host/,
    },
    {
      name: 'invalid network name',
      args: ['net', 'define', 'a;b', '--subnet', '10.1.0.0/24'],
      error: /network name "a;b" is not valid/,
    },
    {
      name: 'name already defined',
      args: ['net', 'define', 'lab2', '--subnet', '10.1.0.0/24'],
      error: /network "lab2" is already defined/,
    },
    { name: 'missing subnet', args: ['net', 'define', 'x'], error: /network "x" needs a subnet/ },
    {
      name: 'start of an unknown network',
      args: ['net', 'start', 'nope'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'stop of an unknown network',
      args: ['net', 'stop', 'nope'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'undefine of an unknown network',
      args: ['net', 'undefine', 'nope'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'undefine of a running network',
      args: ['net', 'undefine', 'default'],
      error: /network "default" is running/,
    },
    {
      name: 'unknown option',
      args: ['net', 'define', 'x', '--subnet', '10.1.0.0/24', '--bogus'],
      error: /unknown option '--bogus'/,
    },
    {
      name: 'YAML with an unknown key',
      args: yamlCase(
        'version: 1\nnetworks:\n  a:\n    mode: nat\n    subnet: 10.1.0.0/24\n    subnett: 10.2.0.0/24\n',
      ),
      error: /bad\.yaml:6: unknown key "networks\.a\.subnett"/,
    },
    {
      name: 'YAML with a wrong type',
      args: yamlCase('networks:\n  a:\n    mode: nat\n    subnet: 10.1.0.0/24\n    autostart: "yes"\n'),
      error: /bad\.yaml:5: key "networks\.a\.autostart" must be boolean/,
    },
    {
      name: 'YAML with an unknown mode',
      args: yamlCase('networks:\n  a:\n    mode: bridge-ish\n    subnet: 10.1.0.0/24\n'),
      error:
        /bad\.yaml:3: key "networks\.a\.mode" must be one of "nat", "isolated", "routed", "bridge", "open"/,
    },
    {
      name: 'YAML that overlaps within itself',
      args: yamlCase(
        'networks:\n  a:\n    mode: nat\n    subnet: 10.1.0.0/24\n  b:\n    mode: nat\n    subnet: 10.1.0.0/16\n',
      ),
      error: /subnet 10\.1\.0\.0\/16 of "b" overlaps "a" \(10\.1\.0\.0\/24\)/,
    },
  ];

  for (const c of cases) {
    test(`${c.name}: exit 2, one error line, nothing changed`, async () => {
      await assertRefused(lab, typeof c.args === 'function' ? await c.args() : c.args, c.error);
    });
  }

  test('--json reports the error as {error: {code, message, hint}}', async () => {
    const r = await lab.kvmnet('net', 'start', 'nope', '--json');
    assert.equal(r.code, 2);
    const j = JSON.parse(r.stdout) as { error: { code: string; message: string; hint: string } };
    assert.equal(j.error.code, 'unknown-network');
    assert.equal(j.error.message, 'network "nope" is not defined');
  });

  test('undefine --force stops a running network first', async () => {
    await lab.kvmnetOk('net', 'start', 'lab2');
    await lab.kvmnetOk('net', 'undefine', 'lab2', '--force');
    const links = await must('ip', ['-n', lab.hostNs, '-br', 'link']);
    assert.doesNotMatch(links, /virbr7/);
    const list = await lab.kvmnetJson<Array<{ name: string }>>('net', 'list');
    assert.deepEqual(
      list.map((n) => n.name),
      ['default'],
    );
  });

  test('a start that fails half-way (dnsmasq cannot bind) rolls back everything', async () => {
    await lab.kvmnetOk('net', 'define', 'lab3', '--subnet', '10.40.0.0/24', '--bridge', 'virbr8');
    const squatter = await lab.squatDns('10.40.0.1');
    const before = await lab.snapshot();
    const r = await lab.kvmnet('net', 'start', 'lab3');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^error: start of network "lab3" failed: dnsmasq did not start: .*10\.40\.0\.1.*Address already in use; everything it did was rolled back/m,
    );
    assert.deepEqual(await lab.snapshot(), before, 'no bridge, rule, process or file left behind');
    await squatter.stop();
    await lab.kvmnetOk('net', 'start', 'lab3');
    await lab.kvmnetOk('net', 'undefine', 'lab3', '--force');
  });
});
