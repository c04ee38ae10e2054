// Issue 4: port forwards in a namespace lab. The target guest is a namespace whose veth carries the
// MAC of a kvmnet port with a reservation, so forwards by VM name resolve as for a QEMU guest.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HOST_LAN_IP, LAN_ROUTER, Lab, REPO } from '../lib/lab.js';
import { must, run, Tracked } from '../lib/proc.js';
import { assertRefused } from '../lib/refusal.js';

const URL8080 = `http://${HOST_LAN_IP}:8080/`;

describe('port forwards', () => {
  let lab: Lab;
  let web: string; // the target guest namespace, VM "web"
  let client: string; // another guest of the same network

  before(async () => {
    lab = await Lab.create('fwd');
    await lab.kvmnetOk('up');
    await lab.kvmnetOk('net', 'define', 'iso', '--mode', 'isolated', '--subnet', '10.20.0.0/24');
    await lab.kvmnetOk(
      'port',
      'add',
      'default',
      '--vm',
      'web',
      '--mac',
      '52:54:00:00:00:10',
      '--ip',
      '192.168.122.10',
    );
    await lab.kvmnetOk('port', 'add', 'default', '--vm', 'bare', '--mac', '52:54:00:00:00:11');
    web = await lab.addGuest('web', 'virbr0');
    await must('ip', ['-n', web, 'link', 'set', 'eth0', 'address', '52:54:00:00:00:10']);
    assert.equal((await lab.dhcp(web, 'web')).ip, '192.168.122.10');
    client = await lab.addGuest('cli', 'virbr0');
    await lab.dhcp(client, 'cli');
    await lab.server(web, 80, 'web');
    await lab.server(web, 20001, 'web20001');
  });
  after(async () => {
    await lab.destroy();
  });

  test('from the LAN, the host address reaches the guest (acceptance 1)', async () => {
    const out = await lab.kvmnetOk(
      'forward',
      'add',
      'default',
      'tcp',
      '8080',
      'web:80',
      '--description',
      'web',
    );
    assert.equal(out, 'tcp/8080  tcp *:8080 -> web:80 (192.168.122.10:80)\n');
    assert.equal(await lab.fetch(lab.lanNs, URL8080), `web sees ${LAN_ROUTER}\n`);
  });

  test('from the host itself, its own LAN address works; 127.0.0.1 is not forwarded (acceptance 2)', async () => {
    assert.equal(await lab.fetch(lab.hostNs, URL8080), `web sees ${HOST_LAN_IP}\n`);
    assert.equal(await lab.fetch(lab.hostNs, 'http://127.0.0.1:8080/', 2), null);
  });

  test('from a guest of the same network (hairpin): the target sees the gateway as source (acceptance 3)', async () => {
    assert.equal(await lab.fetch(client, URL8080), 'web sees 192.168.122.1\n');
  });

  test('a UDP forward carries a datagram and its reply (acceptance 4)', async () => {
    const echo = Tracked.start('ip', [
      'netns',
      'exec',
      web,
      'socat',
      'UDP-RECVFROM:5300,fork',
      'SYSTEM:read x; echo got-$x',
    ]);
    lab.tracked.push(echo);
    await new Promise((r) => setTimeout(r, 300));
    await lab.kvmnetOk('forward', 'add', 'default', 'udp', '5353', '192.168.122.10:5300');
    const r = await run('ip', ['netns', 'exec', lab.lanNs, 'socat', '-T2', '-', `UDP:${HOST_LAN_IP}:5353`], {
      input: 'ping\n',
    });
    assert.equal(r.stdout, 'got-ping\n');
  });

  test('a range maps port by port', async () => {
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '10000-10002', 'web:20000-20002');
    assert.equal(await lab.fetch(lab.lanNs, `http://${HOST_LAN_IP}:10001/`), `web20001 sees ${LAN_ROUTER}\n`);
  });

  test('--host-ip listens on that address only', async () => {
    await must('ip', ['-n', lab.hostNs, 'addr', 'add', '192.168.100.240/24', 'dev', 'eth1']);
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '9090', 'web:80', '--host-ip', HOST_LAN_IP);
    assert.equal(await lab.fetch(lab.lanNs, `http://${HOST_LAN_IP}:9090/`), `web sees ${LAN_ROUTER}\n`);
    assert.equal(await lab.fetch(lab.lanNs, 'http://192.168.100.240:9090/', 2), null);
    assert.equal(
      await lab.fetch(lab.lanNs, 'http://192.168.100.240:8080/'),
      `web sees ${LAN_ROUTER}\n`,
      'a forward without --host-ip listens on every host address',
    );
    await must('ip', ['-n', lab.hostNs, 'addr', 'del', '192.168.100.240/24', 'dev', 'eth1']);
  });

  test('forwards are map elements: the rule count does not grow with them', async () => {
    const nft = await must('ip', ['netns', 'exec', lab.hostNs, 'nft', 'list', 'table', 'inet', 'kvmnet']);
    assert.match(nft, /map fwd_any \{[^}]*elements = \{ [^}]*tcp \. 8080 : 192\.168\.122\.10 \. 80/s);
    assert.match(nft, /map fwd_addr \{[^}]*192\.168\.100\.239 \. tcp \. 9090 : 192\.168\.122\.10 \. 80/s);
    assert.equal(
      (nft.match(/dnat ip to/g) ?? []).length,
      2,
      'two DNAT rules in all, whatever the number of forwards',
    );
    const list = await lab.kvmnetJson<Array<{ id: string; targetIp: string }>>('forward', 'list');
    assert.deepEqual(
      list.map((f) => [f.id, f.targetIp]),
      [
        ['tcp/8080', '192.168.122.10'],
        ['tcp/192.168.100.239/9090', '192.168.122.10'],
        ['tcp/10000-10002', '192.168.122.10'],
        ['udp/5353', '192.168.122.10'],
      ],
    );
  });

  test('removing a forward does not break an established connection of another', async () => {
    const cat = Tracked.start('ip', [
      'netns',
      'exec',
      web,
      'socat',
      'TCP-LISTEN:7000,fork,reuseaddr',
      'EXEC:cat',
    ]);
    lab.tracked.push(cat);
    await new Promise((r) => setTimeout(r, 300));
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '7000', 'web');
    const flag = join(lab.dir, 'go');
    const hold = Tracked.start('ip', [
      'netns',
      'exec',
      lab.lanNs,
      process.execPath,
      join(REPO, 'test/fixtures/hold-conn.mjs'),
      HOST_LAN_IP,
      '7000',
      flag,
    ]);
    lab.tracked.push(hold);
    await hold.waitFor(/READY/);
    await lab.kvmnetOk('forward', 'del', 'default', 'tcp', '9090', '--host-ip', HOST_LAN_IP);
    await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '9091', 'web:80');
    await writeFile(flag, '');
    await hold.waitFor(/OK|ERROR/);
    assert.match(hold.output, /OK/);
    assert.equal(
      await lab.fetch(lab.lanNs, `http://${HOST_LAN_IP}:9090/`, 2),
      null,
      'the removed forward is gone',
    );
  });

  test('a forward to a VM follows its reservation', async () => {
    await lab.kvmnetOk('port', 'set', 'web', '--ip', '192.168.122.11');
    assert.equal((await lab.dhcp(web, 'web')).ip, '192.168.122.11');
    assert.equal(await lab.fetch(lab.lanNs, URL8080), `web sees ${LAN_ROUTER}\n`);
    const nft = await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'list',
      'map',
      'inet',
      'kvmnet',
      'fwd_any',
    ]);
    assert.match(nft, /tcp \. 8080 : 192\.168\.122\.11 \. 80/);
    assert.doesNotMatch(nft, /192\.168\.122\.10 \. 80/);
  });

  test('forwards come back with net start', async () => {
    await lab.kvmnetOk('net', 'stop', 'default');
    assert.equal(await lab.fetch(lab.lanNs, URL8080, 2), null);
    await lab.kvmnetOk('net', 'start', 'default');
    // These guests are veths, not kvmnet taps: plug them into the new bridge by hand.
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'vg0', 'master', 'virbr0']);
    await must('ip', ['-n', lab.hostNs, 'link', 'set', 'vg1', 'master', 'virbr0']);
    assert.equal(await lab.fetch(lab.lanNs, URL8080), `web sees ${LAN_ROUTER}\n`);
    const show = await lab.kvmnetOk('show');
    assert.match(show, /^ {2}forwards:$/m);
    assert.match(show, /^ {4}tcp \*:8080 -> web:80 \(192\.168\.122\.11:80\) {2}# web$/m);
  });

  test('a forward change on a drifted table falls back to a full reconcile', async () => {
    // Someone deletes the 9091 element by hand; removing that forward then cannot be a delta.
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'delete element inet kvmnet fwd_any { tcp . 9091 }',
    ]);
    const r = await lab.kvmnet('forward', 'del', 'default', 'tcp', '9091');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /reconciling network "default" in full/);
    // And an element left behind by hand with another target is corrected when a forward is added.
    await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'add element inet kvmnet fwd_any { tcp . 9092 : 192.168.122.99 . 1 }',
    ]);
    const add = await lab.kvmnet('forward', 'add', 'default', 'tcp', '9092', 'web:80');
    assert.equal(add.code, 0, add.stderr);
    const map = await must('ip', [
      'netns',
      'exec',
      lab.hostNs,
      'nft',
      'list',
      'map',
      'inet',
      'kvmnet',
      'fwd_any',
    ]);
    assert.match(map, /tcp \. 9092 : 192\.168\.122\.11 \. 80/);
    assert.doesNotMatch(map, /9091|192\.168\.122\.99/);
    await lab.kvmnetOk('forward', 'del', 'default', 'tcp', '9092');
  });

  const refusals: Array<{ name: string; args: string[]; error: RegExp }> = [
    {
      name: 'the same port twice',
      args: ['forward', 'add', 'default', 'tcp', '8080', 'web:81'],
      error: /tcp 8080 overlaps the forward tcp\/8080 of "default" \(to web:80\)/,
    },
    {
      name: 'an overlapping range',
      args: ['forward', 'add', 'default', 'tcp', '9995-10000', 'web:1-6'],
      error: /tcp 9995-10000 overlaps the forward tcp\/10000-10002/,
    },
    {
      name: 'a host-ip forward over an any-address one',
      args: ['forward', 'add', 'default', 'tcp', '8080', 'web:80', '--host-ip', HOST_LAN_IP],
      error: /tcp 192\.168\.100\.239:8080 overlaps the forward tcp\/8080/,
    },
    {
      name: 'ranges of different lengths',
      args: ['forward', 'add', 'default', 'tcp', '11000-11010', 'web:20000-20005'],
      error: /host ports 11000-11010 and target ports 20000-20005 differ in length/,
    },
    {
      name: 'a port outside 1-65535',
      args: ['forward', 'add', 'default', 'tcp', '70000', 'web:80'],
      error: /host port "70000" is not a port or port range in 1-65535/,
    },
    {
      name: 'port 0',
      args: ['forward', 'add', 'default', 'tcp', '12000', 'web:0'],
      error: /target port "0" is not a port or port range in 1-65535/,
    },
    {
      name: 'a reversed range',
      args: ['forward', 'add', 'default', 'tcp', '12010-12000', 'web'],
      error: /host port "12010-12000" is reversed/,
    },
    {
      name: 'an unknown protocol',
      args: ['forward', 'add', 'default', 'sctp', '12000', 'web:80'],
      error: /protocol "sctp" is not tcp or udp/,
    },
    {
      name: 'a target outside the subnet',
      args: ['forward', 'add', 'default', 'tcp', '12000', '10.9.9.9:80'],
      error: /target 10\.9\.9\.9 is not a guest address of "default"/,
    },
    {
      name: 'the gateway as target',
      args: ['forward', 'add', 'default', 'tcp', '12000', '192.168.122.1:80'],
      error: /target 192\.168\.122\.1 is not a guest address/,
    },
    {
      name: 'an unknown network',
      args: ['forward', 'add', 'nope', 'tcp', '12000', 'web:80'],
      error: /network "nope" is not defined/,
    },
    {
      name: 'an unknown VM',
      args: ['forward', 'add', 'default', 'tcp', '12000', 'ghost:80'],
      error: /VM "ghost" has no port on network "default"/,
    },
    {
      name: 'a VM without reservation',
      args: ['forward', 'add', 'default', 'tcp', '12000', 'bare:80'],
      error: /VM "bare" has no reserved address on "default" \(bare\/net0\)/,
    },
    {
      name: 'an isolated network',
      args: ['forward', 'add', 'iso', 'tcp', '12000', '10.20.0.5:80'],
      error: /network "iso" is isolated: it takes no port forwards/,
    },
    {
      name: "a host ip that is not the host's",
      args: ['forward', 'add', 'default', 'tcp', '12000', 'web:80', '--host-ip', '10.1.2.3'],
      error: /host ip 10\.1\.2\.3 is not an address of this host/,
    },
    {
      name: 'a gateway as host ip',
      args: ['forward', 'add', 'default', 'tcp', '12000', 'web:80', '--host-ip', '192.168.122.1'],
      error: /host ip 192\.168\.122\.1 is the gateway of network "default"/,
    },
    {
      name: 'deleting an unknown forward',
      args: ['forward', 'del', 'default', 'tcp', '4444'],
      error: /network "default" has no forward tcp\/4444/,
    },
    {
      name: 'removing the reservation a forward needs',
      args: ['port', 'set', 'web', '--no-ip'],
      error:
        /forward tcp\/\d+ reaches web, which would have no address once port web\/net0 loses its reservation/,
    },
    {
      name: 'deleting the port a forward needs',
      args: ['port', 'del', 'web'],
      error: /forward tcp\/\d+ reaches web, which would have no address once port web\/net0 is removed/,
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name} (exit 2, nothing changed)`, async () => {
      await assertRefused(lab, c.args, c.error);
    });
  }

  test('forward del by id; undefine --force takes the forwards along', async () => {
    await lab.kvmnetOk('forward', 'del', 'default', 'tcp/10000-10002');
    const ids = (await lab.kvmnetJson<Array<{ id: string }>>('forward', 'list', 'default')).map((f) => f.id);
    assert.ok(!ids.includes('tcp/10000-10002'));
    const r = await lab.kvmnet('net', 'undefine', 'default');
    assert.equal(r.code, 2);
    await lab.kvmnetOk('down');
    const r2 = await lab.kvmnet('net', 'undefine', 'default');
    assert.match(
      r2.stderr,
      /network "default" still has 2 ports \(web\/net0, bare\/net0\) and 3 forwards \(tcp\/7000, tcp\/8080, udp\/5353\)/,
    );
    await lab.kvmnetOk('net', 'undefine', 'default', '--force');
    assert.deepEqual(await lab.kvmnetJson<unknown[]>('forward', 'list'), []);
  });
});
