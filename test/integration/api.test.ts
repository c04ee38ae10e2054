// Issue 7, acceptance 1: the HTTP API of `kvmnet serve`, against a daemon running in a lab's host
// namespace: every route, answers equal to the CLI's --json, authentication refusals that change
// nothing, bad JSON and schema violations answered 400 naming the field, the event stream, and the
// listener's safety rules (socket 0600, remote bind refused, Host checked).
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { Daemon } from '../lib/daemon.js';
import { HOST_LAN_IP, LAN_ROUTER, Lab } from '../lib/lab.js';
import { must } from '../lib/proc.js';

interface ApiError {
  code: string;
  message: string;
  hint?: string;
  field?: string;
}

function assertError(r: { status: number; json: unknown }, status: number, match: Partial<ApiError>): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  const e = r.json as ApiError;
  assert.equal(typeof e.message, 'string');
  assert.ok(e.hint, 'every error has a hint');
  for (const [k, v] of Object.entries(match))
    assert.equal(e[k as keyof ApiError], v, `${k} of ${JSON.stringify(e)}`);
}

describe('kvmnet serve: the HTTP API', () => {
  let lab: Lab;
  let d: Daemon;
  let guest: string;

  before(async () => {
    lab = await Lab.create('api');
    await lab.kvmnetOk('up');
    await lab.kvmnetOk(
      'port',
      'add',
      'default',
      '--vm',
      'web',
      '--mac',
      '52:54:00:00:07:10',
      '--ip',
      '192.168.122.10',
    );
    guest = await lab.addGuest('web', 'virbr0');
    await must('ip', ['-n', guest, 'link', 'set', 'eth0', 'address', '52:54:00:00:07:10']);
    assert.equal((await lab.dhcp(guest, 'web')).ip, '192.168.122.10');
    await lab.server(guest, 80, 'web');
    // No repair rounds: their short-lived ip/nft processes would show up in the before/after
    // snapshots of "nothing changed" (drift.test.ts tests the rounds).
    d = await Daemon.start(lab, ['--repair-interval', '0']);
  });
  after(async () => {
    await d?.stop();
    await lab?.destroy();
  });

  test('the socket and the token file are 0600; the login address carries the token', async () => {
    assert.equal((await stat(d.socket)).mode & 0o777, 0o600);
    assert.equal((await stat(join(lab.stateDir, 'api-token'))).mode & 0o777, 0o600);
    assert.match(d.token, /^[0-9a-f]{64}$/);
    assert.equal(d.loginUrl, `http://127.0.0.1:${d.port}/?token=${d.token}`);
    assert.deepEqual(await d.ok('/api/session'), {
      version: '0.1.0',
      auth: 'socket',
      csrf: (await d.ok<{ csrf: string }>('/api/session', { via: 'tcp' })).csrf,
    });
  });

  test('reads answer what the CLI prints with --json', async () => {
    for (const [path, cli] of [
      ['/api/networks', ['net', 'list']],
      ['/api/networks/default', ['net', 'info', 'default']],
      ['/api/ports', ['port', 'list']],
      ['/api/ports?network=default', ['port', 'list', 'default']],
      ['/api/forwards', ['forward', 'list']],
      ['/api/leases', ['leases']],
      ['/api/leases?network=default', ['leases', 'default']],
      ['/api/show', ['show']],
    ] as const) {
      assert.deepEqual(await d.ok(path, { via: 'tcp' }), await lab.kvmnetJson(...cli), path);
    }
    const leases = await d.ok<Array<{ vm: string; ip: string }>>('/api/leases');
    assert.deepEqual(
      leases.map((l) => [l.vm, l.ip]),
      [['web', '192.168.122.10']],
    );
  });

  test('no token or a wrong token: 401 and nothing changed', async () => {
    const before = await lab.snapshot();
    const body = { name: 'intruder', subnet: '10.66.0.0/24' };
    for (const token of [false, 'f'.repeat(64), 'short'] as const) {
      for (const [method, path] of [
        ['GET', '/api/networks'],
        ['POST', '/api/networks'],
        ['POST', '/api/networks/default/stop'],
        ['DELETE', '/api/networks/default?force=1'],
        ['GET', '/api/events'],
      ] as const) {
        const r = await d.request(path, {
          via: 'tcp',
          method,
          token,
          ...(method === 'POST' && path === '/api/networks' ? { body } : {}),
        });
        assertError(r, 401, { code: 'unauthorized', message: token === false ? 'no token' : 'wrong token' });
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="kvmnet"');
      }
    }
    assert.deepEqual(await lab.snapshot(), before);
    assert.deepEqual(
      (await lab.kvmnetJson<Array<{ name: string; state: string }>>('net', 'list')).map((n) => [
        n.name,
        n.state,
      ]),
      [['default', 'active']],
    );
  });

  test('the page login: ?token sets an HttpOnly SameSite=Strict cookie; writes need the CSRF header', async () => {
    const bad = await d.request(`/?token=${'0'.repeat(64)}`, { via: 'tcp', token: false });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    const login = await d.request(`/?token=${d.token}`, { via: 'tcp', token: false });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, '/');
    const set = login.headers['set-cookie']?.[0] ?? '';
    assert.match(set, /^kvmnet_session=[0-9a-f]{64}; HttpOnly; SameSite=Strict; Path=\/$/);
    assert.ok(!set.includes(d.token), 'the cookie is not the token');
    const cookie = set.split(';')[0] ?? '';
    const s = await d.ok<{ auth: string; csrf: string }>('/api/session', {
      via: 'tcp',
      token: false,
      headers: { cookie },
    });
    assert.equal(s.auth, 'cookie');
    const write = { via: 'tcp', token: false, method: 'POST' } as const;
    assertError(await d.request('/api/networks/default/start', { ...write, headers: { cookie } }), 403, {
      code: 'csrf',
    });
    assertError(
      await d.request('/api/networks/default/start', {
        ...write,
        headers: { cookie, 'x-kvmnet-csrf': 'nope' },
      }),
      403,
      { code: 'csrf' },
    );
    const ok = await d.ok<{ plans: Array<{ steps: unknown[] }> }>('/api/networks/default/start', {
      ...write,
      headers: { cookie, 'x-kvmnet-csrf': s.csrf },
    });
    assert.deepEqual(
      ok.plans.map((p) => p.steps),
      [[]],
      'starting a running network plans nothing',
    );
  });

  test('a Host header naming another server is refused (DNS rebinding)', async () => {
    assertError(
      await d.request('/api/networks', { via: 'tcp', headers: { host: `evil.example:${d.port}` } }),
      403,
      { code: 'bad-host' },
    );
    assert.equal(
      (await d.request('/api/networks', { via: 'tcp', headers: { host: `localhost:${d.port}` } })).status,
      200,
    );
  });

  test('bad JSON, schema violations and refused input: 400 naming the field, nothing changed', async () => {
    const before = await lab.snapshot();
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      d.request(path, { method: 'POST', body, headers });
    assertError(await post('/api/networks', '{"name": "x",'), 400, { code: 'invalid-json' });
    assertError(await post('/api/networks', '[1, 2]'), 400, { code: 'invalid-body' });
    assertError(await post('/api/networks', { name: 'lab', subnet: 10 }), 400, {
      code: 'invalid-body',
      field: 'subnet',
      message: 'key "subnet" must be string',
    });
    assertError(await post('/api/networks', { name: 'lab', subnet: '10.9.0.0/24', colour: 'red' }), 400, {
      code: 'invalid-body',
      field: 'colour',
      message: 'unknown key "colour"',
    });
    assertError(await post('/api/networks', { name: 'lab', mode: 'bridged' }), 400, {
      code: 'invalid-body',
      field: 'mode',
    });
    assertError(
      await post('/api/networks', { name: 'lab', dhcpHosts: [{ mac: '52:54:00:00:00:01' }] }),
      400,
      {
        code: 'invalid-body',
        field: 'dhcpHosts.0.ip',
        message: 'missing key "dhcpHosts.0.ip"',
      },
    );
    assertError(await post('/api/forwards', { network: 'default', proto: 'tcp', ports: 8080 }), 400, {
      code: 'invalid-body',
      field: 'target',
    });
    assertError(
      await post('/api/forwards', { network: 'default', proto: 'sctp', ports: 1, target: 'web:1' }),
      400,
      {
        field: 'proto',
      },
    );
    assertError(
      await d.request('/api/ports/web%2Fnet0', { method: 'PATCH', body: { link: 'sideways' } }),
      400,
      { field: 'link' },
    );
    const empty = await d.request('/api/ports/web%2Fnet0', { method: 'PATCH', body: {} });
    assertError(empty, 400, {
      code: 'invalid-body',
      message: 'the body: give link, ip, spoofCheck or isolated',
    });
    assert.equal((empty.json as ApiError).field, undefined);
    // Meaning is checked by the CLI's own rules.
    assertError(await post('/api/networks', { name: 'lab', subnet: '10.9.0.300/24' }), 400, {
      code: 'invalid-subnet',
    });
    assertError(
      await post('/api/forwards', { network: 'default', proto: 'tcp', ports: '70000', target: 'web:80' }),
      400,
      {
        code: 'invalid-port',
      },
    );
    assertError(await post('/api/networks', { name: 'lab', subnet: '192.168.122.0/25' }), 409, {
      code: 'subnet-overlap',
    });
    assertError(await post('/api/networks', { name: 'default', subnet: '10.9.0.0/24' }), 409, {
      code: 'already-defined',
    });
    assertError(await post('/api/networks', { name: 'lab' }, { 'content-type': 'text/plain' }), 415, {
      code: 'unsupported-media-type',
    });
    assertError(await post('/api/networks', { name: 'lab', pad: 'x'.repeat(70_000) }), 413, {
      code: 'body-too-large',
    });
    assertError(await d.request('/api/networks/nope'), 404, { code: 'unknown-network' });
    assertError(await d.request('/api/ports/nope', { method: 'DELETE' }), 404, { code: 'unknown-port' });
    assertError(await d.request('/api/nothing'), 404, { code: 'no-route' });
    const r = await d.request('/api/networks', { method: 'DELETE' });
    assertError(r, 405, { code: 'method-not-allowed' });
    assert.equal(r.headers.allow, 'GET, POST');
    assert.deepEqual(await lab.snapshot(), before);
  });

  test('networks: define (and its dry run), info, autostart, start, stop, undefine', async () => {
    const body = { name: 'lab', subnet: '10.77.0.0/24', dhcp: false };
    const before = await lab.snapshot();
    const dry = await d.ok<{ dryRun: boolean; definitions: Array<{ change: string }> }>(
      '/api/networks?dryRun=1',
      { method: 'POST', body },
    );
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.definitions.map((x) => x.change),
      ['define'],
    );
    assert.deepEqual(await lab.snapshot(), before, 'a dry run changes nothing');

    const def = await d.ok<{ network: { name: string; mode: string; gateway: string; bridge: string } }>(
      '/api/networks',
      { method: 'POST', body, via: 'tcp' },
      201,
    );
    assert.equal(def.network.mode, 'nat');
    assert.equal(def.network.gateway, '10.77.0.1');
    const bridge = def.network.bridge;
    const info = await d.ok<{ name: string; state: string; autostart: boolean }>('/api/networks/lab');
    assert.deepEqual([info.name, info.state, info.autostart], ['lab', 'inactive', false]);

    await d.ok('/api/networks/lab/autostart', { method: 'PUT', body: { enabled: true } });
    assert.equal((await lab.kvmnetJson<{ autostart: boolean }>('net', 'info', 'lab')).autostart, true);

    const started = await d.ok<{ plans: Array<{ action: string; steps: unknown[] }> }>(
      '/api/networks/lab/start',
      {
        method: 'POST',
      },
    );
    assert.equal(started.plans[0]?.action, 'start');
    assert.ok((started.plans[0]?.steps.length ?? 0) > 0);
    await must('ip', ['-n', lab.hostNs, 'link', 'show', bridge]);
    assert.equal((await lab.kvmnetJson<{ state: string }>('net', 'info', 'lab')).state, 'active');

    await d.ok('/api/networks/lab/stop', { method: 'POST' });
    assert.equal((await lab.kvmnetJson<{ state: string }>('net', 'info', 'lab')).state, 'inactive');
    assert.notEqual(
      (await lab.exec(lab.hostNs, ['ip', 'link', 'show', bridge])).code,
      0,
      'the bridge is gone',
    );

    await d.ok('/api/networks/lab', { method: 'DELETE' });
    assertError(await d.request('/api/networks/lab'), 404, { code: 'unknown-network' });
  });

  test('ports: add, pull and plug the cable, change the reservation, delete', async () => {
    const added = await d.ok<{ port: { name: string; id: string; mac: string } }>(
      '/api/ports',
      { method: 'POST', body: { network: 'default', vm: 'db', ip: '192.168.122.20' } },
      201,
    );
    assert.equal(added.port.id, 'db/net0');
    const tap = added.port.name;
    assert.match(tap, /^vnet\d+$/);
    const master = async (): Promise<string | undefined> =>
      (
        JSON.parse(await must('ip', ['-n', lab.hostNs, '-json', 'link', 'show', tap])) as Array<{
          master?: string;
        }>
      )[0]?.master;
    assert.equal(await master(), 'virbr0');

    const down = await d.ok<{ port: { link: string } }>('/api/ports/db%2Fnet0', {
      method: 'PATCH',
      body: { link: 'down' },
    });
    assert.equal(down.port.link, 'down');
    const port = (await lab.kvmnetJson<Array<{ id: string; link: string }>>('port', 'list')).find(
      (p) => p.id === 'db/net0',
    );
    assert.equal(port?.link, 'down');
    await d.ok(`/api/ports/${tap}`, { method: 'PATCH', body: { link: 'up' } });

    const set = await d.ok<{ port: { ip?: string } }>(`/api/ports/${tap}?network=default`, {
      method: 'PATCH',
      body: { ip: '192.168.122.21' },
    });
    assert.equal(set.port.ip, '192.168.122.21');
    // A bad reservation with a link change changes neither.
    assertError(
      await d.request(`/api/ports/${tap}`, { method: 'PATCH', body: { link: 'down', ip: '10.0.0.1' } }),
      400,
      { code: 'invalid-ip' },
    );
    assert.equal(
      (await lab.kvmnetJson<Array<{ id: string; link: string }>>('port', 'list')).find(
        (p) => p.id === 'db/net0',
      )?.link,
      'up',
    );

    await d.ok('/api/ports/db%2Fnet0', { method: 'DELETE' });
    assert.notEqual((await lab.exec(lab.hostNs, ['ip', 'link', 'show', tap])).code, 0, 'the tap is gone');
  });

  test('a libvirt port through the API: recorded, reservation served, no tap made', async () => {
    const before = await lab.exec(lab.hostNs, ['ip', '-o', 'link', 'show']);
    const added = await d.ok<{ port: { id: string; tap?: string; ip?: string }; bridge?: string }>(
      '/api/ports',
      {
        method: 'POST',
        body: {
          network: 'default',
          vm: 'lv1',
          mac: '52:54:00:9b:00:07',
          ip: '192.168.122.30',
          tap: 'libvirt',
        },
      },
      201,
    );
    assert.equal(added.port.id, 'lv1/net0');
    assert.equal(added.port.tap, 'libvirt');
    assert.equal(added.bridge, 'virbr0', "the answer names the bridge the domain's <interface> needs");
    const after = await lab.exec(lab.hostNs, ['ip', '-o', 'link', 'show']);
    assert.equal(after.stdout.split('\n').length, before.stdout.split('\n').length, 'no link was made');
    const hostsFile = join(lab.runDir, 'net', 'default', 'dhcp-hosts');
    assert.match(await readFile(hostsFile, 'utf8'), /52:54:00:9b:00:07.*192\.168\.122\.30/);
    assertError(
      await d.request('/api/ports', { method: 'POST', body: { network: 'default', vm: 'lv2', tap: 'qemu' } }),
      400,
      { code: 'invalid-body' },
    );
    await d.ok('/api/ports/lv1%2Fnet0', { method: 'DELETE' });
    assert.doesNotMatch(await readFile(hostsFile, 'utf8'), /9b:00:07/);
  });

  test('forwards: add one that works from the LAN, list it, delete it', async () => {
    const url = `http://${HOST_LAN_IP}:8081/`;
    const dry = await d.ok<{ dryRun: boolean }>('/api/forwards?dryRun=1', {
      method: 'POST',
      body: { network: 'default', proto: 'tcp', ports: 8081, target: 'web:80' },
    });
    assert.equal(dry.dryRun, true);
    assert.equal(await lab.fetch(lab.lanNs, url, 2), null, 'a dry run forwards nothing');
    const f = await d.ok<{ forward: { id: string; targetIp: string } }>(
      '/api/forwards',
      {
        method: 'POST',
        body: { network: 'default', proto: 'tcp', ports: 8081, target: 'web:80', description: 'api' },
      },
      201,
    );
    assert.deepEqual([f.forward.id, f.forward.targetIp], ['tcp/8081', '192.168.122.10']);
    assert.equal(await lab.fetch(lab.lanNs, url), `web sees ${LAN_ROUTER}\n`);
    assert.deepEqual(
      await d.ok('/api/forwards?network=default'),
      await lab.kvmnetJson('forward', 'list', 'default'),
    );
    assertError(
      await d.request('/api/forwards', {
        method: 'POST',
        body: { network: 'default', proto: 'tcp', ports: '8081', target: 'web:81' },
      }),
      409,
      { code: 'forward-conflict' },
    );
    await d.ok('/api/forwards/default/tcp/8081', { method: 'DELETE' });
    assert.equal(await lab.fetch(lab.lanNs, url, 2), null);
    assertError(await d.request('/api/forwards/default/tcp/8081', { method: 'DELETE' }), 404, {
      code: 'unknown-forward',
    });
  });

  test('requests at the same time take turns inside the daemon: each answered, none polls the lock', async () => {
    const from = d.proc.output.length;
    const ports = [8091, 8092, 8093, 8094, 8095, 8096];
    const added = await Promise.all(
      ports.map((p) =>
        d.request('/api/forwards', {
          method: 'POST',
          body: { network: 'default', proto: 'tcp', ports: p, target: 'web:80' },
        }),
      ),
    );
    assert.deepEqual(
      added.map((r) => r.status),
      ports.map(() => 201),
    );
    const listed = await d.ok<{ id: string }[]>('/api/forwards?network=default');
    assert.deepEqual(
      listed.map((f) => f.id).filter((id) => ports.some((p) => id === `tcp/${p}`)),
      ports.map((p) => `tcp/${p}`),
    );
    const removed = await Promise.all(
      ports.map((p) => d.request(`/api/forwards/default/tcp/${p}`, { method: 'DELETE' })),
    );
    assert.deepEqual(
      removed.map((r) => r.status),
      ports.map(() => 200),
    );
    assert.deepEqual(await d.ok('/api/forwards?network=default'), []);
    // A request waits for the one before it in the daemon's own queue, not on the lock socket the
    // daemon itself holds (which would poll and note "waiting for the kvmnet lock held by process").
    assert.doesNotMatch(d.proc.output.slice(from), /waiting for the kvmnet lock/);
  });

  test('stats: the kernel counters of the bridge and its taps', async () => {
    const s = await d.ok<{ time: number; links: Record<string, { rxBytes: number; txBytes: number }> }>(
      '/api/stats',
    );
    assert.ok(s.links.virbr0, JSON.stringify(s));
    assert.ok((s.links.virbr0?.rxBytes ?? 0) > 0, 'the guest leased through the bridge');
    assert.deepEqual(
      Object.keys(s.links).sort(),
      [
        'virbr0',
        ...(await lab.kvmnetJson<Array<{ name: string }>>('port', 'list')).map((p) => p.name),
      ].sort(),
    );
  });

  test('events: the state on connect, a CLI change soon after, stats every second', async () => {
    const es = d.events();
    try {
      const first = await es.waitFor((e) => e.event === 'state');
      const data = first.data as { networks: unknown; show: unknown; leases: unknown };
      assert.deepEqual(data.show, await lab.kvmnetJson('show'));
      assert.deepEqual(data.networks, await lab.kvmnetJson('net', 'list'));
      const mark = es.events.length;
      await lab.kvmnetOk('forward', 'add', 'default', 'tcp', '9090', 'web:80');
      const next = await es.waitFor(
        (e) =>
          e.event === 'state' &&
          (e.data as { show: Array<{ forwards: Array<{ id: string }> }> }).show[0]?.forwards.some(
            (f) => f.id === 'tcp/9090',
          ) === true,
        mark,
      );
      assert.ok(next);
      await es.waitFor((e) => e.event === 'stats' && 'virbr0' in (e.data as { links: object }).links);
    } finally {
      es.close();
      await lab.kvmnetOk('forward', 'del', 'default', 'tcp', '9090');
    }
  });

  test('the OpenAPI document covers every route, with the request schemas', async () => {
    const doc = await d.ok<{
      openapi: string;
      paths: Record<
        string,
        Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>
      >;
    }>('/api/openapi.json', { via: 'tcp' });
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(
      Object.keys(doc.paths).sort(),
      [
        '/apply',
        '/check',
        '/down',
        '/events',
        '/forwards',
        '/forwards/{network}/{proto}/{ports}',
        '/leases',
        '/networks',
        '/networks/{name}',
        '/networks/{name}/autostart',
        '/networks/{name}/start',
        '/networks/{name}/stop',
        '/openapi.json',
        '/ports',
        '/ports/{ref}',
        '/repair',
        '/session',
        '/show',
        '/stats',
        '/up',
      ]
        .filter((p) => p !== '/openapi.json')
        .sort(),
    );
    const net = doc.paths['/networks']?.post?.requestBody?.content['application/json']?.schema;
    assert.equal(net?.additionalProperties, false);
    assert.deepEqual(net?.required, ['name']);
    assert.ok((net?.properties as Record<string, unknown>).subnet);
    const fwd = doc.paths['/forwards']?.post?.requestBody?.content['application/json']?.schema;
    assert.deepEqual(fwd?.required, ['network', 'proto', 'ports', 'target']);
  });

  test('up and down over the API', async () => {
    const down = await d.ok<{ plans: Array<{ network: string; action: string }> }>('/api/down', {
      method: 'POST',
    });
    assert.deepEqual(
      down.plans.map((p) => [p.network, p.action]),
      [['default', 'stop']],
    );
    assert.equal((await lab.kvmnetJson<{ state: string }>('net', 'info', 'default')).state, 'inactive');
    await d.ok('/api/up', { method: 'POST' });
    assert.equal((await lab.kvmnetJson<{ state: string }>('net', 'info', 'default')).state, 'active');
  });

  test('apply: the definitions file as JSON (dry run, then for real); networks is required', async () => {
    const file = parseYaml(await lab.kvmnetOk('export')) as { networks: Record<string, unknown> };
    const body = { ...file, networks: { ...file.networks, ap1: { mode: 'nat', subnet: '10.79.0.0/24' } } };
    const before = await lab.snapshot();
    type Result = { dryRun: boolean; definitions: Array<{ network: string; change: string }> };
    const dry = await d.ok<Result>('/api/apply?dryRun=1', { method: 'POST', body });
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.definitions.map((x) => [x.network, x.change]),
      [['ap1', 'define']],
    );
    assert.deepEqual(await lab.snapshot(), before, 'a dry run changes nothing');
    const done = await d.ok<Result>('/api/apply', { method: 'POST', body });
    assert.deepEqual(
      done.definitions.map((x) => [x.network, x.change]),
      [['ap1', 'define']],
    );
    assert.deepEqual(await lab.kvmnetJson('net', 'info', 'ap1'), await d.ok('/api/networks/ap1'));
    const bad = await d.request('/api/apply', { method: 'POST', body: { forwards: [] } });
    assert.equal(bad.status, 400, bad.text);
    assert.match(bad.text, /networks/);
    const back = await d.ok<Result>('/api/apply', { method: 'POST', body: file });
    assert.deepEqual(
      back.definitions.map((x) => [x.network, x.change]),
      [['ap1', 'undefine']],
    );
  });

  test('the CLI hands net define/start/stop, up, down and port add/del to this daemon; not with --no-daemon or another state dir', async () => {
    // With only ip on its PATH (for \`ip netns exec\`: no nft, no dnsmasq), a CLI that succeeds had
    // the daemon do the work.
    const bin = join(lab.dir, 'only-ip');
    await mkdir(bin, { recursive: true });
    await symlink((await must('sh', ['-c', 'command -v ip'])).trim(), join(bin, 'ip')).catch(() => {});
    const bare = { PATH: bin };
    const state = async (): Promise<string> => (await d.ok<{ state: string }>('/api/networks/default')).state;
    const stop = await lab.kvmnetEnv(bare, 'net', 'stop', 'default');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /^network default: stopped \(\d+ steps\)\n$/);
    assert.equal(await state(), 'inactive');
    const start = await lab.kvmnetEnv(bare, 'net', 'start', 'default');
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /^network default: started \(\d+ steps\)\n$/);
    assert.match(start.stderr, /^kvmnet: starting dnsmasq /m, "the daemon's progress notes are printed");
    assert.equal(await state(), 'active');
    for (const verb of ['down', 'up']) {
      const r = await lab.kvmnetEnv(bare, verb, '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { plans: unknown[] }).plans.length, 1, verb);
    }
    assert.equal(await state(), 'active');

    // Ports: add (its tap is made), a libvirt port (its <interface> names the bridge), delete.
    const add = await lab.kvmnetEnv(bare, 'port', 'add', 'default', '--vm', 'handed', '--json');
    assert.equal(add.code, 0, add.stderr);
    const tap = (JSON.parse(add.stdout) as { port: { name: string } }).port.name;
    const link = JSON.parse((await lab.exec(lab.hostNs, ['ip', '-j', 'link', 'show', tap])).stdout) as Array<{
      master?: string;
    }>;
    assert.equal(link[0]?.master, 'virbr0', 'the tap is on the bridge');
    const lv = await lab.kvmnetEnv(bare, 'libvirt', 'interface', 'default', '--vm', 'handedlv');
    assert.equal(lv.code, 0, lv.stderr);
    assert.match(lv.stdout, /<source bridge='virbr0'\/>/);
    for (const ref of [tap, 'handedlv/net0']) {
      const del = await lab.kvmnetEnv(bare, 'port', 'del', ref);
      assert.equal(del.code, 0, del.stderr);
    }
    assert.notEqual((await lab.exec(lab.hostNs, ['ip', 'link', 'show', tap])).code, 0, 'the tap is gone');

    // net define: with an `ip` that only enters the namespace, a define that succeeds was the
    // daemon's (the CLI alone lists the host's links with ip first).
    const gate = join(lab.dir, 'netns-only');
    await mkdir(gate, { recursive: true });
    const realIp = (await must('sh', ['-c', 'command -v ip'])).trim();
    await writeFile(
      join(gate, 'ip'),
      `#!/bin/sh\n[ "$1" = netns ] && exec ${realIp} "$@"\necho "ip: only netns here" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const netnsOnly = { PATH: gate };
    const def = await lab.kvmnetEnv(
      netnsOnly,
      'net',
      'define',
      'handed',
      '--subnet',
      '10.99.0.0/24',
      '--json',
    );
    assert.equal(def.code, 0, def.stderr);
    assert.equal(
      (JSON.parse(def.stdout) as { network: { bridge: string } }).network.bridge.startsWith('virbr'),
      true,
    );
    const here = await lab.kvmnetEnv(
      netnsOnly,
      '--no-daemon',
      'net',
      'define',
      'here',
      '--subnet',
      '10.98.0.0/24',
    );
    assert.equal(here.code, 1, 'alone, the CLI needs ip for the same define');
    assert.match(here.stderr, /only netns here/);

    // Errors: the same lines, JSON and exit status as when the CLI works alone.
    for (const args of [
      ['net', 'define', 'bad name!'],
      ['net', 'define', 'other', '--subnet', '10.99.0.0/24', '--json'],
      ['net', 'define', 'handed', '--subnet', '10.97.0.0/24'],
    ]) {
      const alone = await lab.kvmnetEnv({}, '--no-daemon', ...args);
      const handed = await lab.kvmnetEnv(netnsOnly, ...args);
      assert.equal(alone.code, 2, `${args.join(' ')}: ${alone.stderr}`);
      assert.deepEqual([handed.code, handed.stdout, handed.stderr], [alone.code, alone.stdout, alone.stderr]);
    }
    assert.equal((await lab.kvmnetEnv(bare, 'net', 'undefine', 'handed')).code, 0);

    for (const args of [
      ['net', 'start', 'nosuch'],
      ['net', 'start', 'nosuch', '--json'],
    ]) {
      const alone = await lab.kvmnetEnv({}, '--no-daemon', ...args);
      const handed = await lab.kvmnetEnv(bare, ...args);
      assert.equal(alone.code, 2);
      assert.deepEqual([handed.code, handed.stdout, handed.stderr], [alone.code, alone.stdout, alone.stderr]);
    }

    // --no-daemon, KVMNET_NO_DAEMON=1: done here, where nft is missing: refused, nothing changed.
    const before = await lab.snapshot();
    for (const [env, args] of [
      [bare, ['--no-daemon']],
      [{ ...bare, KVMNET_NO_DAEMON: '1' }, []],
    ] as const) {
      const r = await lab.kvmnetEnv(env, ...args, 'net', 'stop', 'default');
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error: nft is not installed/m);
    }
    // Another state dir: the daemon answers 421 and the CLI works alone, where default is unknown.
    const other = await lab.kvmnetEnv(
      { ...bare, KVMNET_STATE_DIR: join(lab.dir, 'other-state') },
      'net',
      'stop',
      'default',
    );
    assert.equal(other.code, 2, other.stderr);
    assert.match(other.stderr, /^error: network "default" is not defined/);
    assert.deepEqual(await lab.snapshot(), before);
    assert.equal(await state(), 'active');
  });
});

describe('kvmnet serve: refusals at start', () => {
  let lab: Lab;
  before(async () => {
    lab = await Lab.create('apistart');
  });
  after(async () => {
    await lab?.destroy();
  });

  test('a non-loopback --listen is refused unless --allow-remote (exit 2, nothing made)', async () => {
    const r = await lab.kvmnet('serve', '--listen', '0.0.0.0:8470');
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      'error: refusing to listen on 0.0.0.0: not a loopback address\n' +
        'hint: pass --allow-remote to serve other hosts (they need the token; put TLS in front), or listen on 127.0.0.1\n',
    );
    const bad = await lab.kvmnet('serve', '--listen', 'localhost');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: --listen "localhost" is not ADDRESS:PORT\nhint: /);
    assert.notEqual((await lab.exec(lab.hostNs, ['test', '-e', join(lab.runDir, 'kvmnet.sock')])).code, 0);
  });

  test('a second daemon on the same socket is refused; a dead one’s socket is taken over', async () => {
    const a = await Daemon.start(lab);
    try {
      const r = await lab.kvmnet('serve', '--no-listen');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: another kvmnet serve answers on .*kvmnet\.sock\n/);
    } finally {
      a.proc.child.kill('SIGKILL');
      await a.stop();
    }
    // The killed daemon left its socket behind; a new one starts anyway.
    const b = await Daemon.start(lab);
    try {
      assert.equal((await b.ok<{ auth: string }>('/api/session')).auth, 'socket');
    } finally {
      await b.stop();
    }
  });
});
