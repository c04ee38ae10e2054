// The CLI's hand-over to `kvmnet serve` (src/cli/daemon.ts) against a stand-in daemon on a Unix
// socket: what is asked, how answers, errors and progress notes come back, and when the CLI does
// the work itself instead (no daemon, a stale socket, a daemon of another state dir, opted out).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { daemonEngine, mayDelegate, parseResponse, type Delegable } from '../../src/cli/daemon.js';
import { KvmnetError } from '../../src/model/errors.js';
import { earlyRequest, earlyTarget } from '../../src/cli/early.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** bin/kvmnet (or a copy) run by node as a command, without the variables that change its path. */
function launch(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

interface Seen {
  method: string;
  url: string;
  stateDir: string | undefined;
  body: string;
}

type Reply = (req: Seen, res: ServerResponse) => void;

/** Local engine stand-in: records the calls that reach it. */
function localRecorder(calls: string[]): Delegable {
  const r = (what: string) => () => {
    calls.push(what);
    return Promise.resolve({ dryRun: false, definitions: [], plans: [], notes: ['local'] });
  };
  return {
    define: r('define') as unknown as Delegable['define'],
    start: r('start'),
    stop: r('stop'),
    undefine: r('undefine'),
    setAutostart: r('setAutostart'),
    up: r('up'),
    down: r('down'),
    portAdd: r('portAdd') as unknown as Delegable['portAdd'],
    portDel: r('portDel') as unknown as Delegable['portDel'],
    libvirtInterface: r('libvirtInterface') as unknown as Delegable['libvirtInterface'],
  };
}

describe('the CLI hands commands to kvmnet serve', () => {
  let dir: string;
  let socket: string;
  let server: Server;
  let reply: Reply = () => {};
  const seen: Seen[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvmnet-daemon-client-'));
    socket = join(dir, 'kvmnet.sock');
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const s: Seen = {
          method: req.method ?? '',
          url: req.url ?? '',
          stateDir: req.headers['x-kvmnet-state-dir'] as string | undefined,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        seen.push(s);
        reply(s, res);
      });
    });
    await new Promise<void>((r) => server.listen(socket, () => r()));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  const engine = (calls: string[], notes: string[], sock: string | undefined = socket): Delegable =>
    daemonEngine({
      socket: sock,
      stateDir: '/var/lib/kvmnet/',
      local: () => Promise.resolve(localRecorder(calls)),
      note: (m) => notes.push(m),
    });

  test('each verb is one request on its route, naming the state dir; the answer is returned as is', async () => {
    const answer = { dryRun: true, definitions: [], plans: [{ network: 'a b', steps: [] }], notes: [] };
    reply = (_s, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-kvmnet-progress': encodeURIComponent(JSON.stringify(['starting dnsmasq (é)'])),
      });
      res.end(JSON.stringify(answer));
    };
    seen.length = 0;
    const calls: string[] = [];
    const notes: string[] = [];
    const e = engine(calls, notes);
    await e.define(
      { name: 'lab', mode: 'routed', subnet: '10.9.0.0/24', dhcp: null, autostart: false },
      { dryRun: false },
    );
    // A mode the API's body refuses: the engine here names it, as without a daemon.
    await e.define({ name: 'lab', mode: 'bogus' }, { dryRun: true });
    assert.deepEqual(calls, ['define']);
    calls.length = 0;
    assert.deepEqual(await e.start('a b', { dryRun: true, confirmTimeout: 7 }), answer);
    await e.stop('n', { dryRun: false });
    await e.undefine('n', { force: true, dryRun: false });
    await e.setAutostart('n', false, { dryRun: false });
    await e.up({ dryRun: false });
    await e.down({ dryRun: true });
    await e.portAdd({ network: 'n', vm: 'v', ip: '10.0.0.5' }, { dryRun: false });
    await e.portDel('v/net0', 'n', { dryRun: true });
    await e.portDel('vnet3', undefined, { dryRun: false });
    reply = (_s, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...answer, bridge: 'virbr7' }));
    };
    assert.deepEqual(await e.libvirtInterface({ network: 'n', vm: 'v' }, { dryRun: false }), {
      ...answer,
      bridge: 'virbr7',
    });
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url} ${s.body}`),
      [
        'POST /api/networks {"name":"lab","mode":"routed","subnet":"10.9.0.0/24","dhcp":null,"autostart":false}',
        'POST /api/networks/a%20b/start?confirmTimeout=7&dryRun=1 ',
        'POST /api/networks/n/stop ',
        'DELETE /api/networks/n?force=1 ',
        'PUT /api/networks/n/autostart {"enabled":false}',
        'POST /api/up ',
        'POST /api/down?dryRun=1 ',
        'POST /api/ports {"network":"n","vm":"v","ip":"10.0.0.5"}',
        'DELETE /api/ports/v%2Fnet0?network=n&dryRun=1 ',
        'DELETE /api/ports/vnet3 ',
        'POST /api/ports {"network":"n","vm":"v","tap":"libvirt"}',
      ],
    );
    assert.ok(
      seen.every((s) => s.stateDir === '/var/lib/kvmnet'),
      'the state dir is sent, absolute and normalised',
    );
    assert.deepEqual(calls, [], 'nothing ran locally');
    assert.equal(notes.length, 10, 'each answer with a progress header carried its note');
    assert.equal(notes[0], 'starting dnsmasq (é)');
  });

  test("the daemon's errors keep their code, hint, field and kind (exit 2 or 1)", async () => {
    const cases: Array<[number, Record<string, string>, number]> = [
      [404, { code: 'unknown-network', message: 'network "x" is not defined', hint: 'h', kind: 'input' }, 2],
      [503, { code: 'locked', message: 'held', hint: 'h', kind: 'failure' }, 1],
      [409, { code: 'bridge-taken', message: 'm', hint: 'h', kind: 'failure' }, 1],
      [500, { code: 'start-failed', message: 'm', hint: 'h' }, 1],
      [400, { code: 'invalid-timeout', message: 'm', hint: 'h', field: 'f' }, 2],
    ];
    for (const [status, body, exit] of cases) {
      reply = (_s, res) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const calls: string[] = [];
      await assert.rejects(engine(calls, []).start('x', { dryRun: false }), (e: unknown) => {
        assert.ok(e instanceof KvmnetError);
        assert.equal(e.code, body.code);
        assert.equal(e.message, body.message);
        assert.equal(e.hint, body.hint);
        assert.equal(e.field, body.field);
        assert.equal(e.exitCode, exit, `${status} ${body.code}`);
        return true;
      });
      assert.deepEqual(calls, [], 'an error is not a reason to run it again locally');
    }
  });

  test('a daemon of another state dir (421): the work is done here, and the daemon is not asked again', async () => {
    reply = (_s, res) => {
      res.writeHead(421, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'other-state-dir', message: 'm', hint: 'h', kind: 'input' }));
    };
    seen.length = 0;
    const calls: string[] = [];
    const e = engine(calls, []);
    const r = await e.stop('n', { dryRun: false });
    assert.deepEqual(r.notes, ['local']);
    await e.up({ dryRun: false });
    assert.deepEqual(calls, ['stop', 'up']);
    assert.equal(seen.length, 1);
  });

  test('no daemon: no socket file, a stale socket nobody listens on, or no socket given', async () => {
    // A daemon killed with SIGKILL leaves its socket file behind: connections to it are refused.
    const stale = join(dir, 'stale.sock');
    const script = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script]);
    assert.ok((await stat(stale)).isSocket(), 'the stale socket file is there');
    for (const sock of [join(dir, 'missing.sock'), stale, undefined]) {
      const calls: string[] = [];
      await engine(calls, [], sock).start('n', { dryRun: false });
      assert.deepEqual(calls, ['start'], String(sock));
    }
  });

  test('a lost connection after the request was sent is an error (the daemon may have done it)', async () => {
    reply = (_s, res) => res.socket?.destroy();
    const calls: string[] = [];
    await assert.rejects(engine(calls, []).stop('n', { dryRun: false }), (e: unknown) => {
      assert.ok(e instanceof KvmnetError);
      assert.equal(e.code, 'daemon-lost');
      assert.equal(e.exitCode, 1);
      return true;
    });
    assert.deepEqual(calls, []);
  });

  test('a slow answer, a chunked one and a state dir beyond ASCII come through', async () => {
    // The request is not followed by a half-close: a Node.js server would drop it while it works.
    reply = (_s, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"dryRun":false,');
        res.end('"notes":["é"]}');
      }, 150);
    };
    seen.length = 0;
    const e = daemonEngine({
      socket,
      stateDir: '/srv/kvmnet-état',
      local: () => Promise.reject(new Error('the daemon should answer')),
      note: () => {},
    });
    assert.deepEqual(await e.stop('n', { dryRun: false }), { dryRun: false, notes: ['é'] });
    assert.equal(seen.length, 1);
    // Node.js hands header bytes over as Latin-1; the server decodes them as UTF-8 (server.ts).
    assert.equal(Buffer.from(seen[0]?.stateDir ?? '', 'latin1').toString('utf8'), '/srv/kvmnet-état');
  });

  test('bin/kvmnet sends the request of an idempotent command early; the CLI takes its answer', async () => {
    const answer = { dryRun: false, definitions: [], plans: [], notes: [] };
    reply = (_s, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-kvmnet-progress': encodeURIComponent(JSON.stringify(['stopping dnsmasq'])),
      });
      res.end(JSON.stringify(answer));
    };
    const env = { KVMNET_STATE_DIR: '/var/lib/kvmnet/', KVMNET_RUN_DIR: dir };
    const cli = (early: ReturnType<typeof earlyRequest>, notes: string[] = []): Delegable =>
      daemonEngine({
        socket,
        stateDir: '/var/lib/kvmnet/',
        local: () => Promise.reject(new Error('the daemon should answer')),
        note: (m) => notes.push(m),
        early,
      });
    seen.length = 0;
    const early = earlyRequest(['node', 'kvmnet', 'net', 'stop', 'a b', '--json'], env);
    assert.ok(early, 'net stop NAME --json is sent early');
    const notes: string[] = [];
    assert.deepEqual(await cli(early, notes).stop('a b', { dryRun: false }), answer);
    assert.deepEqual(notes, ['stopping dnsmasq'], "the early answer's progress notes are printed");
    assert.deepEqual(
      seen.map((x) => `${x.method} ${x.url} ${x.stateDir}`),
      ['POST /api/networks/a%20b/stop /var/lib/kvmnet'],
      'asked once',
    );
    // Should the CLI come to another request (here --dry-run), it asks for that one itself.
    seen.length = 0;
    const other = earlyRequest(['node', 'kvmnet', 'up'], env);
    assert.ok(other);
    await cli(other).up({ dryRun: true });
    assert.deepEqual(
      seen.map((x) => `${x.method} ${x.url}`),
      ['POST /api/up', 'POST /api/up?dryRun=1'],
    );
    // No daemon on the socket: nothing is sent, and the CLI works alone.
    const none = earlyRequest(['node', 'kvmnet', 'down'], { ...env, KVMNET_RUN_DIR: join(dir, 'nothing') });
    assert.ok(none);
    assert.deepEqual(await none.answer, { kind: 'absent' });
  });

  test("bin/kvmnet prints the daemon's answer as the CLI does, without loading the CLI", async () => {
    // A copy of the launcher with the early bundle and no CLI bundle: it can only finish a command
    // the daemon takes. Each command runs there in its early shape and through the whole CLI in a
    // shape that is not sent early but makes the same request; both must print the same.
    const lone = join(dir, 'lone');
    await mkdir(join(lone, 'bin'), { recursive: true });
    await mkdir(join(lone, 'dist/cli-early'), { recursive: true });
    for (const f of ['bin/kvmnet', 'bin/package.json', 'dist/cli-early/early.cjs'])
      await copyFile(join(REPO, f), join(lone, f));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KVMNET_STATE_DIR: '/var/lib/kvmnet',
      KVMNET_RUN_DIR: dir,
    };
    delete env.NODE_EXTRA_CA_CERTS;
    delete env.KVMNET_NO_DAEMON;
    const plans = [
      {
        network: 'x',
        action: 'start',
        steps: [
          { kind: 'ip', why: 'a' },
          { kind: 'nft', why: 'b' },
        ],
      },
    ];
    const result = { dryRun: false, definitions: [], plans, notes: ['no flow offload'] };
    const cases: Array<{ early: string[]; cli: string[]; status: number; body: unknown; code: number }> = [
      { early: ['net', 'start', 'x'], cli: ['net', 'start', '--', 'x'], status: 200, body: result, code: 0 },
      {
        early: ['net', 'stop', 'x', '--json'],
        cli: ['--json', 'net', 'stop', 'x'],
        status: 200,
        body: result,
        code: 0,
      },
      {
        early: ['net', 'undefine', 'x'],
        cli: ['net', 'undefine', '--', 'x'],
        status: 409,
        body: {
          code: 'network-running',
          message: 'network "x" is running',
          hint: 'stop it, or --force',
          kind: 'input',
        },
        code: 2,
      },
      {
        early: ['up', '--json'],
        cli: ['--json', 'up'],
        status: 500,
        body: { code: 'start-failed', message: 'start of network "x" failed: boom', kind: 'failure' },
        code: 1,
      },
      { early: ['down'], cli: ['down', '--'], status: 200, body: result, code: 0 },
      {
        early: ['port', 'del', 'web/net0', '--network', 'default'],
        cli: ['port', 'del', '--network', 'default', 'web/net0'],
        status: 200,
        body: { ...result, port: { name: 'vnet0', id: 'web/net0' } },
        code: 0,
      },
    ];
    for (const c of cases) {
      reply = (_s, res) => {
        res.writeHead(c.status, {
          'content-type': 'application/json',
          'x-kvmnet-progress': encodeURIComponent(JSON.stringify(['starting dnsmasq'])),
        });
        res.end(JSON.stringify(c.body));
      };
      seen.length = 0;
      const early = await launch(join(lone, 'bin/kvmnet'), c.early, env);
      const cli = await launch(join(REPO, 'bin/kvmnet'), c.cli, env);
      assert.equal(early.code, c.code, `${c.early.join(' ')}: ${early.stderr}`);
      assert.deepEqual(early, cli, c.early.join(' '));
      assert.match(early.stderr, /^kvmnet: starting dnsmasq\n/, 'the progress note comes first');
      assert.equal(seen.length, 2, 'one request each');
      assert.equal(seen[0]?.url, seen[1]?.url);
      assert.equal(`${seen[0]?.method}`, `${seen[1]?.method}`);
    }
    // What the daemon does not take (another state dir) is the CLI's, which the copy lacks.
    reply = (_s, res) => {
      res.writeHead(421, { 'content-type': 'application/json' });
      res.end('{}');
    };
    const other = await launch(join(lone, 'bin/kvmnet'), ['net', 'stop', 'x'], env);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /Cannot find module/);
  });

  test('which command lines are sent early: exactly these shapes, when a daemon may be asked', () => {
    const t = (...args: string[]): string | undefined => {
      const x = earlyTarget(['node', 'kvmnet', ...args]);
      return x && `${x.method} ${x.path}`;
    };
    assert.equal(t('net', 'start', 'default'), 'POST /api/networks/default/start');
    assert.equal(t('net', 'stop', 'lab.1', '--json'), 'POST /api/networks/lab.1/stop');
    assert.equal(t('up'), 'POST /api/up');
    assert.equal(t('down', '--json'), 'POST /api/down');
    assert.equal(t('net', 'undefine', 'a b'), 'DELETE /api/networks/a%20b');
    assert.equal(t('port', 'del', 'web/net0'), 'DELETE /api/ports/web%2Fnet0');
    assert.equal(
      t('port', 'del', 'web/net0', '--network', 'default', '--json'),
      'DELETE /api/ports/web%2Fnet0?network=default',
    );
    for (const args of [
      ['net', 'start', 'default', '--dry-run'],
      ['net', 'start', '--dry-run', 'default'],
      ['net', 'start', 'default', '--confirm-timeout', '5'],
      ['--state-dir', '/x', 'net', 'start', 'default'],
      ['--no-daemon', 'net', 'stop', 'default'],
      ['net', 'stop', '--help'],
      ['net', 'stop', '-h'],
      ['net', 'stop', ''],
      ['net', 'stop', 'a', 'b'],
      ['net', 'undefine', 'default', '--force'],
      ['net', 'undefine', '--', 'default'],
      ['net', 'autostart', 'default'],
      ['up', '--dry-run'],
      ['--json', 'up'],
      ['port', 'del', '--network', 'default', 'vnet0'],
      ['port', 'del', 'vnet0', '--network', '-x'],
      ['port', 'del', 'vnet0', '--network=default'],
      ['port', 'del', 'vnet0', '--dry-run'],
      ['port', 'add', 'default'],
      [],
    ])
      assert.equal(t(...args), undefined, args.join(' '));
    const argv = ['node', 'kvmnet', 'net', 'stop', 'default'];
    for (const env of [
      { KVMNET_NO_DAEMON: '1' },
      { KVMNET_TEST_CRASH_AFTER_STEP: '2' },
      { KVMNET_STATE_DIR: '' },
      { KVMNET_RUN_DIR: '' },
    ])
      assert.equal(earlyRequest(argv, env), undefined, JSON.stringify(env));
  });

  test('parseResponse: status, headers and body, or why the bytes are not a whole answer', () => {
    const ok = parseResponse(Buffer.from('HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}'));
    assert.deepEqual(typeof ok === 'string' ? ok : { ...ok, body: ok.body.toString() }, {
      status: 404,
      headers: { 'x-a': '1', 'content-length': '2' },
      body: '{}',
    });
    const chunked = parseResponse(
      Buffer.from(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{"\r\n4\r\na":1\r\n1\r\n}\r\n0\r\n\r\n',
      ),
    );
    assert.equal(typeof chunked === 'string' ? chunked : chunked.body.toString(), '{"a":1}');
    assert.equal(parseResponse(Buffer.alloc(0)), 'the connection closed without an answer');
    assert.equal(
      parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}')),
      'a truncated answer',
    );
    assert.equal(
      parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{}')),
      'a truncated answer',
    );
    const ssh = parseResponse(Buffer.from('SSH-2.0-x\r\n\r\n'));
    assert.ok(typeof ssh === 'string' && ssh.startsWith('not an HTTP answer'), JSON.stringify(ssh));
  });

  test('who may hand over: not with --no-daemon, KVMNET_NO_DAEMON=1 or the crash-test hook', () => {
    assert.equal(mayDelegate(false, {}), true);
    assert.equal(mayDelegate(false, { KVMNET_NO_DAEMON: '0' }), true);
    assert.equal(mayDelegate(true, {}), false);
    assert.equal(mayDelegate(false, { KVMNET_NO_DAEMON: '1' }), false);
    assert.equal(mayDelegate(false, { KVMNET_TEST_CRASH_AFTER_STEP: '3' }), false);
  });
});
