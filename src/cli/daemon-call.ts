// The CLI's side of a request to `kvmnet serve` (see src/cli/daemon.ts): whether it may ask at
// all, the socket, and one HTTP/1.1 request on it. Kept apart from the engine's interface, so that
// bin/kvmnet can send a request before the rest of the CLI has loaded (src/cli/early.ts).
import { connect } from 'node:net';
import { join } from 'node:path';
import { PROGRESS_HEADER, STATE_DIR_HEADER } from '../daemon/progress.js';

/** A daemon's answer, or none: nothing listens (absent), or the connection failed half-way (lost). */
export type Answer =
  | { kind: 'answer'; status: number; body: unknown; progress: string[] }
  | { kind: 'absent' }
  | { kind: 'lost'; message: string };

/** Whether this process may hand commands to a daemon at all (see the file comment). */
export function mayDelegate(noDaemonOption: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  if (noDaemonOption) return false;
  if (env.KVMNET_TEST_CRASH_AFTER_STEP !== undefined) return false;
  const v = env.KVMNET_NO_DAEMON;
  return v === undefined || v === '' || v === '0';
}

/** The daemon's default socket for a run dir (what `kvmnet serve` listens on without --socket). */
export function daemonSocket(runDir: string): string {
  return join(runDir, 'kvmnet.sock');
}

/** A network's API path, e.g. /api/networks/a%20b/start. */
export function networkPath(name: string, tail = ''): string {
  return `/api/networks/${encodeURIComponent(name)}${tail}`;
}

/** A port's API path, e.g. /api/ports/web%2Fnet0?network=default. */
export function portPath(ref: string, network?: string): string {
  const path = `/api/ports/${encodeURIComponent(ref)}`;
  return network === undefined ? path : `${path}?network=${encodeURIComponent(network)}`;
}

/**
 * One request on the socket; 'absent' when nothing listens there (no daemon, or a stale socket),
 * 'lost' when the connection failed after it was made (the daemon may have done the work).
 * HTTP/1.1 written by hand on a `node:net` socket: the daemon is kvmnet's own server, one request
 * per connection (`Connection: close`), and node:http would cost this short-lived process about
 * 7 ms more (its modules, and an IPv6 check of the host name an agent makes). The state dir goes
 * as its UTF-8 bytes (the server decodes them, see src/daemon/server.ts).
 */
export function call(
  socket: string,
  stateDir: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  return new Promise((done) => {
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
      if (typeof res === 'string') return done({ kind: 'lost', message: res });
      let parsed: unknown;
      try {
        parsed = JSON.parse(res.body.toString('utf8'));
      } catch {
        return done({ kind: 'lost', message: `status ${res.status} without a JSON body` });
      }
      done({ kind: 'answer', status: res.status, body: parsed, progress: progressOf(res.headers) });
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected && ['ENOENT', 'ECONNREFUSED', 'ENOTSOCK'].includes(e.code ?? ''))
        done({ kind: 'absent' });
      else done({ kind: 'lost', message: e.message });
    });
    // After 'end' or 'error' this changes nothing (a promise settles once).
    s.on('close', () => done({ kind: 'lost', message: 'the connection closed without an answer' }));
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
