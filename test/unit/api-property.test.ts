// Property tests of the HTTP API (issue 8 point 7): the real ApiServer and Engine, in this process,
// on a Unix socket, with a fake host (an Exec that answers reads with empty lists and records every
// command). Requests are written raw on the socket, so URLs that http.request would refuse get
// through too. Every answer is 2xx or 4xx (or a 5xx the fake host caused), with a one-line JSON
// error; a refused write runs no host command and leaves the state directory as it was. Runs per
// property: KVMNET_FC_RUNS (default below), seed KVMNET_FC_SEED. The list is API_PROPERTY_CASES.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { API_PROPERTY_CASES } from '../lib/cases/input.js';
import { assertOneLine, fcAssertAsync, hostileString, hostileValue, shaped } from '../lib/fc.js';
import { ApiServer } from '../../src/daemon/server.js';
import { routes } from '../../src/daemon/routes.js';
import { Engine } from '../../src/engine/engine.js';
import { Paths } from '../../src/engine/paths.js';
import { Host } from '../../src/host/host.js';
import type { Exec, ExecResult } from '../../src/host/exec.js';

/** Commands that only read the host. Anything else the fake host is asked to run is a change. */
function isRead(cmd: string, args: string[]): boolean {
  if (cmd === 'ip') return args[0] === '-json' || (args.includes('show') && !args.includes('-batch'));
  if (cmd === 'nft')
    return args[0] === '-j' || args[0] === 'list' || (args[0] === 'get' && args[1] === 'element');
  return false;
}

class FakeExec implements Exec {
  writes: string[] = [];
  run(cmd: string, args: string[], opts: { input?: string } = {}): Promise<ExecResult> {
    if (isRead(cmd, args)) {
      if (cmd === 'nft')
        return Promise.resolve({ code: 1, stdout: '', stderr: 'Error: No such file or directory' });
      // `ip -json -batch -` (Host.netState) answers one empty list per command line.
      const answers = args.includes('-batch')
        ? (opts.input ?? '').split('\n').filter((l) => l !== '')
        : ['x'];
      return Promise.resolve({ code: 0, stdout: answers.map(() => '[]\n').join(''), stderr: '' });
    }
    this.writes.push(`${cmd} ${args.join(' ')}${opts.input ? ` <<${opts.input}` : ''}`);
    // ip and nft "succeed" (and change nothing); dnsmasq is missing, so a start fails as a host
    // failure (exit 1, 5xx), distinguishable from a crash ('internal').
    if (cmd === 'dnsmasq')
      return Promise.resolve({ code: 127, stdout: '', stderr: 'dnsmasq: not on the fake host' });
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  }
}

/** The host layer on the fake Exec, with sysctls kept in memory: nothing reaches the real /proc/sys. */
class FakeHost extends Host {
  readonly sysctls = new Map<string, string>();
  constructor(exec: FakeExec) {
    super(exec);
  }
  override sysctlGet(key: string): Promise<string> {
    return Promise.resolve(this.sysctls.get(key) ?? '0');
  }
  override sysctlSet(key: string, value: string): Promise<void> {
    (this.exec as FakeExec).writes.push(`sysctl ${key}=${value}`);
    this.sysctls.set(key, value);
    return Promise.resolve();
  }
  override isWireless(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

/** 5xx codes the fake host causes by refusing commands; 'internal' (a crash) is never among them. */
const HOST_FAILURES =
  /^(host-command-failed|missing-tool|dnsmasq-failed|nft-failed|apply-failed|[a-z-]*-failed)$/;

interface Answer {
  status: number;
  body: string;
}

let dir: string;
let sock: string;
let webRoot: string;
let server: ApiServer;
let fake: FakeExec;
const SECRET = 'SECRET-OUTSIDE-THE-WEB-ROOT';

function raw(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = connect(sock);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const i = text.indexOf('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : 0, body: i < 0 ? '' : text.slice(i + 4) });
    });
    const h = {
      ...headers,
      ...(body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }),
    };
    s.write(
      `${method} ${path} HTTP/1.0\r\nHost: localhost\r\n` +
        Object.entries(h)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('') +
        '\r\n' +
        (body ?? ''),
    );
  });
}

async function tree(d: string, out: Record<string, string> = {}): Promise<Record<string, string>> {
  for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
    const p = join(d, e.name);
    if (e.isDirectory()) await tree(p, out);
    else if (e.name !== 'kvmnet.lock' && !e.name.endsWith('.sock'))
      out[p] = await readFile(p, 'utf8').catch(() => '?');
  }
  return out;
}

/** The answer's contract; returns whether it is a refusal (4xx). */
function checkAnswer(a: Answer, what: string): boolean {
  assert.ok(a.status >= 200 && a.status < 600, `${what}: no HTTP answer`);
  assert.ok(!a.body.includes(SECRET), `${what}: served a file outside the web root`);
  if (a.status < 400) return false;
  let e: { code?: unknown; message?: unknown; hint?: unknown };
  try {
    e = JSON.parse(a.body) as typeof e;
  } catch {
    assert.fail(`${what}: ${a.status} with a body that is not JSON: ${a.body.slice(0, 200)}`);
  }
  assert.equal(typeof e.code, 'string', `${what}: error without code: ${a.body}`);
  assert.notEqual(e.code, 'internal', `${what}: internal error (a crash): ${a.body}`);
  assert.equal(typeof e.message, 'string');
  assertOneLine(e.message as string);
  if (e.hint !== undefined) assertOneLine(e.hint as string, 'hint');
  if (a.status >= 500)
    assert.match(
      e.code as string,
      HOST_FAILURES,
      `${what}: ${a.status} not caused by the fake host: ${a.body}`,
    );
  return a.status < 500;
}

/** Sends one request and checks the contract, and for a refused write that nothing changed. */
async function exchange(
  method: string,
  path: string,
  body?: string,
  type = 'application/json',
): Promise<Answer> {
  const before = method === 'GET' ? undefined : await tree(dir);
  fake.writes = [];
  const a = await raw(method, path, body === undefined ? {} : { 'Content-Type': type }, body);
  const what = `${method} ${path} ${body ?? ''}`.slice(0, 300);
  const refused = checkAnswer(a, what);
  if (refused && before) {
    assert.deepEqual(fake.writes, [], `${what}: refused (${a.status}) but ran host commands`);
    assert.deepEqual(
      await tree(dir),
      before,
      `${what}: refused (${a.status}) but changed the state directory`,
    );
  }
  return a;
}

const BODY_ARBS: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  '/api/networks': shaped({
    name: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), hostileString()),
    mode: fc.constantFrom('nat', 'isolated', 'routed', 'bridge', 'open'),
    subnet: fc.constantFrom('10.50.0.0/24', '10.51.0.0/24', '10.50.0.0/16'),
    bridge: fc.oneof(fc.stringMatching(/^br[a-z0-9]{0,6}$/), hostileString()),
    domain: hostileString(),
    mac: hostileString(),
    gateway: hostileString(),
    dhcp: fc.oneof(fc.constant(false), shaped({ start: hostileString(), end: hostileString() })),
    dns: shaped({
      txt: fc.array(shaped({ name: hostileString(), value: hostileString() }), { maxLength: 2 }),
    }),
    uplink: hostileString(),
    forwardDev: hostileString(),
    mtu: fc.integer(),
  }),
  '/api/ports': shaped({
    network: fc.oneof(fc.constant('lab'), hostileString()),
    vm: fc.oneof(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), hostileString()),
    mac: hostileString(),
    ip: fc.oneof(fc.constant('10.60.0.77'), hostileString()),
    model: hostileString(),
  }),
  '/api/forwards': shaped({
    network: fc.oneof(fc.constant('lab'), hostileString()),
    proto: fc.constantFrom('tcp', 'udp'),
    ports: fc.oneof(fc.integer({ min: 1, max: 65535 }), hostileString()),
    target: fc.oneof(fc.constant('kvm1:80'), hostileString()),
    hostIp: hostileString(),
    description: hostileString(),
  }),
  '/api/ports/{ref}': shaped({
    link: fc.constantFrom('up', 'down'),
    ip: fc.oneof(fc.constant(null), hostileString()),
  }),
  '/api/networks/{name}/autostart': shaped({ enabled: fc.boolean() }),
};

/** A path parameter: a real name, a hostile one percent-encoded, or a broken encoding as is. */
const segmentArb = fc.oneof(
  fc.constantFrom('lab', 'kvm1%2Fnet0', 'vnet0', 'tcp', '8080', 'toString', 'constructor', '__proto__'),
  hostileString().map((s) => encodeURIComponent(s)),
  fc.constantFrom('%', '%zz', '%C0%AF', '%00', '..', '%2e%2e', '%2F', '%E2%80%A8', '%ff'),
);

function fill(path: string, segs: string[]): string {
  let i = 0;
  return path.replace(/\{[a-z]+\}/g, () => segs[i++] ?? 'x');
}

const impl: Record<(typeof API_PROPERTY_CASES)[number], () => Promise<void>> = {
  'request bodies shaped like each route schema: 2xx or 4xx with a one-line JSON error, never 5xx':
    async () => {
      const withBody = routes.filter((r) => r.body !== undefined);
      await fcAssertAsync(
        fc.asyncProperty(
          fc.constantFrom(...withBody),
          fc.array(fc.constantFrom('lab', 'kvm1%2Fnet0', 'vnet0'), { minLength: 3, maxLength: 3 }),
          fc.constantFrom('', '?dryRun=1'),
          fc.oneof(...Object.values(BODY_ARBS)),
          async (route, segs, q, anyBody) => {
            const arb = BODY_ARBS[route.path];
            const body = arb
              ? fc.sample(arb, { numRuns: 1, seed: JSON.stringify(anyBody).length })[0]
              : anyBody;
            await exchange(route.method, fill(route.path, segs) + q, JSON.stringify(body));
          },
        ),
        150,
      );
    },
  'arbitrary bodies, content types and raw non-JSON text: 4xx with a one-line JSON error, never 5xx':
    async () => {
      const withBody = routes.filter((r) => r.body !== undefined);
      await fcAssertAsync(
        fc.asyncProperty(
          fc.constantFrom(...withBody),
          fc.oneof(
            hostileValue().map((v) => JSON.stringify(v)),
            fc.string({ maxLength: 60 }),
            fc.constantFrom(
              '{',
              '{"a":',
              '[1,2',
              '\u0000',
              '{"__proto__":{"x":1}}',
              '{"constructor":{}}',
              'null',
            ),
          ),
          fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', ''),
          async (route, body, type) => {
            await exchange(route.method, fill(route.path, ['lab', 'kvm1%2Fnet0', 'vnet0']), body, type);
          },
        ),
        150,
      );
    },
  'hostile path segments and query strings: 2xx or 4xx, never 5xx, nothing served outside the web root':
    async () => {
      await fcAssertAsync(
        fc.asyncProperty(
          fc.oneof(
            fc
              .constantFrom(...routes)
              .chain((r) =>
                fc
                  .tuple(
                    fc.constant(r.method as string),
                    fc.array(segmentArb, { minLength: 3, maxLength: 3 }),
                  )
                  .map(([m, segs]) => [m, fill(r.path, segs)] as const),
              ),
            fc
              .array(segmentArb, { minLength: 1, maxLength: 4 })
              .map((segs) => ['GET', `/${segs.join('/')}`] as const),
            fc.constantFrom(
              ['GET', '/..%2f..%2fsecret.txt'],
              ['GET', '/%2e%2e/secret.txt'],
              ['GET', '//etc/passwd'],
              ['GET', 'http://evil/api/networks'],
              ['GET', '*'],
              ['GET', '/api/networks/%'],
              ['GET', '/%'],
              ['GET', '/index.html%00.js'],
              ['DELETE', '/api/forwards/lab/tcp/%zz'],
            ) as fc.Arbitrary<readonly [string, string]>,
          ),
          fc.constantFrom('', '?dryRun=1', '?network=%', '?network=%00', '?dryRun=%zz', '?a=1&a=2'),
          async ([method, path], q) => {
            await exchange(method, path + q);
          },
        ),
        200,
      );
    },
  'a refused write changes nothing: no host command run, the state directory byte for byte the same':
    async () => {
      // Writes that the model must refuse (the check itself is in exchange()): every body field set
      // to a payload that no validator accepts.
      await fcAssertAsync(
        fc.asyncProperty(
          fc.constantFrom('\n', ';', '$(id)', '../x', '\0', '}', '#', '"', ' ', 'a'.repeat(300)),
          fc.constantFrom('/api/networks', '/api/ports', '/api/forwards'),
          async (p, path) => {
            const body =
              path === '/api/networks'
                ? { name: `n${p}`, subnet: '10.52.0.0/24', bridge: `b${p}` }
                : path === '/api/ports'
                  ? { network: 'lab', vm: `v${p}` }
                  : { network: 'lab', proto: 'tcp', ports: 9000, target: `kvm1${p}:80` };
            const a = await exchange('POST', path, JSON.stringify(body));
            assert.ok(
              a.status >= 400 && a.status < 500,
              `${path} ${JSON.stringify(body)}: ${a.status} ${a.body}`,
            );
          },
        ),
        60,
      );
    },
};

describe('property tests of the HTTP API (API_PROPERTY_CASES)', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvmnet-apiprop-'));
    await chmod(dir, 0o755); // as /run is: dnsmasq must reach its files after dropping root
    webRoot = join(dir, 'web');
    await mkdir(webRoot);
    await writeFile(join(webRoot, 'index.html'), '<html>page</html>');
    await writeFile(join(dir, 'secret.txt'), SECRET);
    fake = new FakeExec();
    const engine = new Engine({
      paths: new Paths(join(dir, 'state'), join(dir, 'run')),
      host: new FakeHost(fake),
    });
    sock = join(dir, 'api.sock');
    server = new ApiServer({ engine, token: 't'.repeat(32), version: 'test', webRoot, socket: sock });
    await server.start();
    // Something for the routes to find: a network (defined, not started) with a port.
    const n = await raw(
      'POST',
      '/api/networks',
      { 'Content-Type': 'application/json' },
      '{"name":"lab","subnet":"10.60.0.0/24","bridge":"virbr60"}',
    );
    assert.equal(n.status, 201, n.body);
    const p = await raw(
      'POST',
      '/api/ports',
      { 'Content-Type': 'application/json' },
      '{"network":"lab","vm":"kvm1","ip":"10.60.0.10"}',
    );
    assert.ok(p.status < 500, p.body);
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  for (const name of API_PROPERTY_CASES) {
    test(name, async () => {
      const f = impl[name];
      assert.ok(f, `no implementation for "${name}"`);
      await f();
    });
  }
  test('a URL that is not valid percent-encoding answers 400, not 500', async () => {
    for (const path of ['/%', '/%zz.js', '/api/networks/%']) {
      const a = await raw('GET', path, {});
      assert.equal(a.status, 400, `${path}: ${a.body}`);
      assert.equal((JSON.parse(a.body) as { code: string }).code, 'bad-url');
    }
  });
});
