// The CLI hands the commands that start and stop networks and add and remove ports to a running
// `kvmnet serve`, as virsh hands its commands to libvirtd: `net start`, `net stop`, `net undefine`,
// `net autostart`, `up`, `down`, `port add`, `port del` and `libvirt interface` become a request on
// the daemon's Unix socket (RUN_DIR/kvmnet.sock), so the work is
// done by an engine that is already loaded and warm, and the daemon's page and event stream see it
// at once. The answer is what the engine returns (the API answers what the CLI's --json prints), so
// the output, the errors and the exit status are the same; the progress notes the daemon's engine
// wrote come back in a header and are printed when the command ends.
//
// The CLI works alone (as before) when no daemon answers on the socket, when the daemon uses
// another state dir (it answers 421), with --no-daemon or KVMNET_NO_DAEMON=1, and under the
// crash-test hook (KVMNET_TEST_CRASH_AFTER_STEP, which only a local engine obeys). A connection
// lost after the request was sent is an error, not a reason to do the work again here: the daemon
// may have done it.
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { failure, KvmnetError } from '../model/errors.js';
import { PROGRESS_HEADER, STATE_DIR_HEADER } from '../daemon/progress.js';

/** The engine calls a daemon can take over: the same signatures, answered by the API. */
export type Delegable = Pick<
  Engine,
  'start' | 'stop' | 'undefine' | 'setAutostart' | 'up' | 'down' | 'portAdd' | 'portDel' | 'libvirtInterface'
>;

type Answer = { kind: 'answer'; status: number; body: unknown; progress: string[] } | { kind: 'absent' };

/** Whether this process may hand commands to a daemon at all (see the file comment). */
export function mayDelegate(noDaemonOption: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  if (noDaemonOption) return false;
  if (env.KVMNET_TEST_CRASH_AFTER_STEP !== undefined) return false;
  const v = env.KVMNET_NO_DAEMON;
  return v === undefined || v === '' || v === '0';
}

/**
 * One request on the socket; 'absent' when nothing listens there (no daemon, or a stale socket).
 * HTTP/1.1 written by hand on a `node:net` socket: the daemon is kvmnet's own server, one request
 * per connection (`Connection: close`), and node:http would cost this short-lived process about
 * 7 ms more (its modules, and an IPv6 check of the host name an agent makes). The state dir goes
 * as its UTF-8 bytes (the server decodes them, see src/daemon/server.ts).
 */
function call(
  socket: string,
  stateDir: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  return new Promise((done, fail) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const payload = Buffer.from(text ?? '', 'utf8');
    const head = [
      `${method} ${path} HTTP/1.1`,
      'Host: localhost',
      'Connection: close',
      `Content-Length: ${payload.length}`,
      ...(text === undefined ? [] : ['Content-Type: application/json']),
    ];
    const request = Buffer.concat([
      Buffer.from(`${head.join('\r\n')}\r\n${STATE_DIR_HEADER}: `, 'latin1'),
      Buffer.from(stateDir, 'utf8'),
      Buffer.from('\r\n\r\n', 'latin1'),
      payload,
    ]);
    let connected = false;
    const chunks: Buffer[] = [];
    const s = connect(socket);
    s.once('connect', () => {
      connected = true;
      // Not end(): a Node.js server that sees the client's half of the connection close drops the
      // request in progress. `Connection: close` makes the server close it once it has answered.
      s.write(request);
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      const res = parseResponse(Buffer.concat(chunks));
      if (typeof res === 'string') return fail(lost(socket, new Error(res)));
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body.toString('utf8'));
      } catch {
        return fail(lost(socket, new Error(`status ${res.status} without a JSON body`)));
      }
      done({ kind: 'answer', status: res.status, body: parsed, progress: progressOf(res.headers) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected && ['ENOENT', 'ECONNREFUSED', 'ENOTSOCK'].includes(e.code ?? ''))
        done({ kind: 'absent' });
      else fail(lost(socket, e));
    });
  });
}

/**
 * An HTTP/1.1 response read to the end of the connection: its status, headers (names in lower
 * case) and body (Content-Length or chunked), or why it is not one.
 */
export function parseResponse(
  raw: Buffer,
): { status: number; headers: Record<string, string>; body: Buffer } | string {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return raw.length === 0 ? 'the connection closed without an answer' : 'a truncated answer';
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) return `not an HTTP answer: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const size = eol < 0 ? NaN : parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0 || eol + 2 + size > body.length) return 'a truncated answer';
      if (size === 0) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (!Number.isInteger(n) || n < 0 || body.length < n) return 'a truncated answer';
    body = body.subarray(0, n);
  }
  return { status: Number(m[1]), headers, body };
}

function progressOf(headers: Record<string, string>): string[] {
  const h = headers[PROGRESS_HEADER];
  if (typeof h !== 'string') return [];
  try {
    const v: unknown = JSON.parse(decodeURIComponent(h));
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}

function lost(socket: string, e: Error): KvmnetError {
  return failure('daemon-lost', `kvmnet serve on ${socket} did not answer: ${e.message}`, {
    hint: 'the change may or may not have been made: run `kvmnet check`; `--no-daemon` works without the daemon',
  });
}

/** The API's error answer as the CLI's error, of its kind (exit 1 or 2; without one, 5xx are failures). */
function errorOf(status: number, body: unknown): KvmnetError {
  const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof o[k] === 'string' ? o[k] : undefined);
  const hint = str('hint');
  const field = str('field');
  return new KvmnetError(str('code') ?? 'daemon-error', str('message') ?? `kvmnet serve answered ${status}`, {
    kind: o.kind === 'failure' || o.kind === 'input' ? o.kind : status >= 500 ? 'failure' : 'input',
    ...(hint === undefined ? {} : { hint }),
    ...(field === undefined ? {} : { field }),
  });
}

/** Thrown inside a call when the daemon cannot take it: the CLI then does the work itself. */
class NotTaken extends Error {}

/**
 * A Delegable that asks the daemon on `socket`, or, when there is none to ask (no socket given,
 * nothing listening, another state dir), `local()`. `note` prints the daemon's progress notes.
 */
export function daemonEngine(opts: {
  socket: string | undefined;
  stateDir: string;
  local: () => Promise<Delegable>;
  note: (m: string) => void;
}): Delegable {
  const stateDir = resolve(opts.stateDir);
  const socket = opts.socket;
  let gone = socket === undefined;
  const ask = async <T>(method: string, path: string, dryRun: boolean, body?: unknown): Promise<T> => {
    if (gone || socket === undefined) throw new NotTaken();
    const a = await call(socket, stateDir, method, dryRun ? withQuery(path, 'dryRun=1') : path, body);
    if (a.kind === 'absent' || a.status === 421) {
      gone = true;
      throw new NotTaken();
    }
    for (const m of a.progress) opts.note(m);
    if (a.status >= 400) throw errorOf(a.status, a.body);
    return a.body as T;
  };
  const either = async <T>(remote: () => Promise<T>, here: (e: Delegable) => Promise<T>): Promise<T> => {
    try {
      return await remote();
    } catch (e) {
      if (!(e instanceof NotTaken)) throw e;
      return here(await opts.local());
    }
  };
  const net = (name: string, tail = ''): string => `/api/networks/${encodeURIComponent(name)}${tail}`;
  return {
    start: (name, o) =>
      either(
        () =>
          ask(
            'POST',
            o.confirmTimeout === undefined
              ? net(name, '/start')
              : withQuery(net(name, '/start'), `confirmTimeout=${o.confirmTimeout}`),
            o.dryRun,
          ),
        (e) => e.start(name, o),
      ),
    stop: (name, o) =>
      either(
        () => ask('POST', net(name, '/stop'), o.dryRun),
        (e) => e.stop(name, o),
      ),
    undefine: (name, o) =>
      either(
        () => ask('DELETE', o.force ? withQuery(net(name), 'force=1') : net(name), o.dryRun),
        (e) => e.undefine(name, o),
      ),
    setAutostart: (name, enabled, o) =>
      either(
        () => ask('PUT', net(name, '/autostart'), o.dryRun, { enabled }),
        (e) => e.setAutostart(name, enabled, o),
      ),
    up: (o) =>
      either(
        () => ask('POST', '/api/up', o.dryRun),
        (e) => e.up(o),
      ),
    down: (o) =>
      either(
        () => ask('POST', '/api/down', o.dryRun),
        (e) => e.down(o),
      ),
    portAdd: (input, o) =>
      either(
        () => ask('POST', '/api/ports', o.dryRun, input),
        (e) => e.portAdd(input, o),
      ),
    portDel: (ref, network, o) =>
      either(
        () => {
          const path = `/api/ports/${encodeURIComponent(ref)}`;
          const target =
            network === undefined ? path : withQuery(path, `network=${encodeURIComponent(network)}`);
          return ask('DELETE', target, o.dryRun);
        },
        (e) => e.portDel(ref, network, o),
      ),
    // A port whose tap libvirt makes; the answer names the bridge its <interface> needs.
    libvirtInterface: (input, o) =>
      either(
        () =>
          ask<Awaited<ReturnType<Engine['libvirtInterface']>>>('POST', '/api/ports', o.dryRun, {
            ...input,
            tap: 'libvirt',
          }),
        (e) => e.libvirtInterface(input, o),
      ),
  };
}

function withQuery(path: string, q: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}${q}`;
}

/** The daemon's default socket for a run dir (what `kvmnet serve` listens on without --socket). */
export function daemonSocket(runDir: string): string {
  return join(runDir, 'kvmnet.sock');
}
