// `kvmnet serve`: the HTTP server. A Unix socket (0600, no token) and/or a TCP address (bearer
// token, or the page's cookie plus a CSRF header), the API routes, the event stream, and the
// built web page. A thin layer: every request is one engine call, under the engine's own lock.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmod, readFile, stat, unlink } from 'node:fs/promises';
import { makeDirs } from '../engine/fsutil.js';
import { dirname, extname, join, normalize, resolve as resolvePath, sep } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { describeIssue, issuePath } from '../model/input.js';
import { failure, inputError, KvmnetError } from '../model/errors.js';
import { parseIpv4 } from '../model/ipv4.js';
import { EventHub } from './events.js';
import { openApiDocument } from './openapi.js';
import { PROGRESS_HEADER, requestProgress, STATE_DIR_HEADER } from './progress.js';
import { matchRoute, statusOf } from './routes.js';
import { derive, sameSecret } from './token.js';

export { DEFAULT_PORT } from './defaults.js';
export const MAX_BODY = 64 * 1024;
const COOKIE = 'kvmnet_session';
const CSRF_HEADER = 'x-kvmnet-csrf';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ServeOptions {
  engine: Engine;
  token: string;
  version: string;
  socket?: string;
  listen?: ListenAddress;
  allowRemote?: boolean;
  /** The built page (dist/web); absent: `/` explains how to build it. */
  webRoot: string;
  log?: (msg: string) => void;
}

type Transport = 'socket' | 'tcp';
type Auth = 'socket' | 'bearer' | 'cookie';

/** Parses ADDR:PORT ("127.0.0.1:8470", "[::1]:8470", ":8470" for 127.0.0.1). */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    throw new KvmnetError('invalid-listen', `--listen "${text}" is not ADDRESS:PORT`, {
      hint: 'e.g. --listen 127.0.0.1:8470 (port 0 picks a free port)',
      field: 'listen',
    });
  }
  const host = m[1] ?? (m[2] || '127.0.0.1');
  if (m[2] && parseIpv4(host) === undefined && host !== 'localhost') {
    throw new KvmnetError('invalid-listen', `--listen "${text}": "${host}" is not an IPv4 address`, {
      hint: 'give an address, e.g. --listen 127.0.0.1:8470 or [::1]:8470',
      field: 'listen',
    });
  }
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

export function isLoopback(host: string): boolean {
  return host === '::1' || host.startsWith('127.');
}

export class ApiServer {
  private readonly servers: Server[] = [];
  readonly events: EventHub;
  private readonly session: string;
  private readonly csrf: string;
  private readonly log: (msg: string) => void;
  private tcpPort = 0;
  private openapi: string | undefined;

  constructor(private readonly opts: ServeOptions) {
    this.log = opts.log ?? (() => {});
    this.events = new EventHub(opts.engine, this.log);
    this.session = derive(opts.token, 'session');
    this.csrf = derive(opts.token, 'csrf');
  }

  /** Starts listening; refuses a remote address without allowRemote (bad input: nothing started). */
  async start(): Promise<{ url?: string; socket?: string }> {
    const { listen, socket } = this.opts;
    if (listen && !isLoopback(listen.host) && !this.opts.allowRemote) {
      throw new KvmnetError('remote-listen', `refusing to listen on ${listen.host}: not a loopback address`, {
        hint: 'pass --allow-remote to serve other hosts (they need the token; put TLS in front), or listen on 127.0.0.1',
        field: 'listen',
      });
    }
    const out: { url?: string; socket?: string } = {};
    try {
      if (socket) {
        await this.listenSocket(socket);
        out.socket = socket;
      }
      if (listen) {
        const srv = this.make('tcp');
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(listen.port, listen.host, () => resolve());
        });
        const a = srv.address();
        this.tcpPort = typeof a === 'object' && a ? a.port : listen.port;
        const h = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
        out.url = `http://${h}:${this.tcpPort}/`;
      }
    } catch (e) {
      await this.close();
      if (e instanceof KvmnetError) throw e;
      const err = e as NodeJS.ErrnoException;
      throw failure('listen-failed', `cannot listen: ${err.code ?? ''} ${err.message}`.trim(), {
        hint:
          err.code === 'EADDRINUSE'
            ? 'another program uses that port: pick another with --listen'
            : 'check --listen and --socket',
      });
    }
    return out;
  }

  get port(): number {
    return this.tcpPort;
  }

  async close(): Promise<void> {
    this.events.close();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.close(() => r());
            s.closeAllConnections();
          }),
      ),
    );
    this.servers.length = 0;
    if (this.opts.socket) await unlink(this.opts.socket).catch(() => {});
  }

  private make(t: Transport): Server {
    const srv = createServer({ requestTimeout: 30_000 }, (req, res) => {
      this.handle(t, req, res).catch((e: unknown) => {
        this.log(`request failed: ${e instanceof Error ? e.message : String(e)}`);
        if (!res.headersSent)
          sendError(res, 500, new KvmnetError('internal', 'internal error', { kind: 'failure' }));
        else res.end();
      });
    });
    this.servers.push(srv);
    return srv;
  }

  private async listenSocket(path: string): Promise<void> {
    await makeDirs(dirname(path), 0o755);
    if (await exists(path)) {
      if (await answers(path)) {
        throw failure('socket-in-use', `another kvmnet serve answers on ${path}`, {
          hint: 'stop it first, or give another --socket',
        });
      }
      await unlink(path); // left by a daemon that died
    }
    const srv = this.make('socket');
    const old = process.umask(0o177); // the socket is born 0600: no window where others can connect
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(path, () => resolve());
      });
    } finally {
      process.umask(old);
    }
    await chmod(path, 0o600);
  }

  private hostAllowed(req: IncomingMessage): boolean {
    if (this.opts.allowRemote) return true;
    const host = (req.headers.host ?? '').toLowerCase();
    const names = ['127.0.0.1', 'localhost', '[::1]'];
    const l = this.opts.listen?.host;
    if (l) names.push(l.includes(':') ? `[${l}]` : l);
    return names.some((n) => host === `${n}:${this.tcpPort}`);
  }

  private authOf(t: Transport, req: IncomingMessage): Auth | undefined {
    if (t === 'socket') return 'socket';
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(h);
      return m && sameSecret(m[1], this.opts.token) ? 'bearer' : undefined;
    }
    return sameSecret(cookie(req, COOKIE), this.session) ? 'cookie' : undefined;
  }

  private async handle(t: Transport, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const url = requestUrl(req.url);
    if (!url) return sendError(res, 400, badUrl(req.url ?? ''));
    if (t === 'tcp' && !this.hostAllowed(req)) {
      return sendError(
        res,
        403,
        inputError(
          'bad-host',
          `Host "${req.headers.host ?? ''}" is not this server`,
          `open http://127.0.0.1:${this.tcpPort}/`,
        ),
      );
    }
    if (!url.pathname.startsWith('/api/')) return this.serveStatic(t, req, res, url);
    try {
      decodeURIComponent(url.pathname);
    } catch {
      return sendError(res, 400, badUrl(url.pathname));
    }

    const auth = this.authOf(t, req);
    if (!auth) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="kvmnet"');
      return sendError(
        res,
        401,
        inputError(
          'unauthorized',
          req.headers.authorization ? 'wrong token' : 'no token',
          'send Authorization: Bearer TOKEN (the token is in the state dir, file api-token), or use the Unix socket',
        ),
      );
    }
    const write = method !== 'GET' && method !== 'HEAD';
    if (auth === 'cookie' && write && !sameSecret(headerOf(req, CSRF_HEADER), this.csrf)) {
      return sendError(
        res,
        403,
        inputError('csrf', 'a write from the page needs the X-Kvmnet-Csrf header', 'reload the page'),
      );
    }

    if (method === 'GET' && url.pathname === '/api/openapi.json') {
      this.openapi ??= JSON.stringify(openApiDocument(this.opts.version), null, 2);
      return sendJson(res, 200, this.openapi);
    }
    if (method === 'GET' && url.pathname === '/api/events') {
      this.events.add(res);
      return;
    }
    const m = matchRoute(method, url.pathname);
    if (!m)
      return sendError(res, 404, inputError('no-route', `no route ${url.pathname}`, 'see /api/openapi.json'));
    if ('allow' in m) {
      res.setHeader('Allow', m.allow.join(', '));
      return sendError(
        res,
        405,
        inputError(
          'method-not-allowed',
          `${method} is not allowed on ${url.pathname}`,
          `use ${m.allow.join(' or ')}`,
        ),
      );
    }
    const { route, params } = m;
    let body: unknown;
    if (route.body) {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/json') {
        return sendError(
          res,
          415,
          inputError(
            'unsupported-media-type',
            'the body must be JSON',
            'send Content-Type: application/json',
          ),
        );
      }
      const text = await readBody(req);
      if (text === undefined) {
        res.setHeader('Connection', 'close');
        return sendError(
          res,
          413,
          inputError('body-too-large', `the body is over ${MAX_BODY} bytes`, 'send less'),
        );
      }
      try {
        body = JSON.parse(text);
      } catch (e) {
        return sendError(
          res,
          400,
          inputError(
            'invalid-json',
            `the body is not JSON: ${e instanceof Error ? e.message : String(e)}`,
            'send one JSON object',
          ),
        );
      }
      const r = route.body.safeParse(body);
      if (!r.success) {
        const issue = r.error.issues.find((i) => i.code === 'unrecognized_keys') ?? r.error.issues[0];
        const field = issue ? issuePath(issue).map(String).join('.') : '';
        const d = issue
          ? describeIssue(issue, body)
          : { message: 'the body does not match the schema', hint: 'see /api/openapi.json' };
        return sendError(
          res,
          400,
          new KvmnetError('invalid-body', d.message.replace(/^key "(\(top level\))"/, 'the body'), {
            hint: d.hint.replace('docs/cli.md, "The definitions file"', '/api/openapi.json'),
            ...(field ? { field } : {}),
          }),
        );
      }
      body = r.data;
    }
    const dryRun = ['1', 'true'].includes(url.searchParams.get('dryRun') ?? '');
    // A CLI handing its command over (src/cli/daemon.ts) says which state dir it means: another
    // one than this daemon's, and it is told to do the work itself. The path comes as its UTF-8
    // bytes, which Node.js hands over as Latin-1 characters.
    const raw = headerOf(req, STATE_DIR_HEADER);
    const theirs = raw === undefined ? undefined : Buffer.from(raw, 'latin1').toString('utf8');
    if (theirs !== undefined && resolvePath(theirs) !== resolvePath(this.opts.engine.paths.stateDir)) {
      return sendError(
        res,
        421,
        inputError(
          'other-state-dir',
          `this kvmnet serve uses state dir ${this.opts.engine.paths.stateDir}, not ${theirs}`,
          'ask the daemon of that state dir, or run the command without one',
        ),
      );
    }
    const progress: string[] = [];
    const sendProgress = (): void => {
      if (progress.length) res.setHeader(PROGRESS_HEADER, encodeURIComponent(JSON.stringify(progress)));
    };
    try {
      const result = await requestProgress.run(progress, () =>
        route.handler({
          engine: this.opts.engine,
          params,
          query: url.searchParams,
          body,
          dryRun,
          session: { version: this.opts.version, auth, csrf: this.csrf },
        }),
      );
      if (write && !dryRun) this.events.poke();
      sendProgress();
      sendJson(res, route.created && !dryRun ? 201 : 200, JSON.stringify(result ?? null, null, 2));
    } catch (e) {
      if (e instanceof KvmnetError) {
        if (e.code === 'locked') res.setHeader('Retry-After', '1');
        sendProgress();
        return sendError(res, statusOf(e), e);
      }
      throw e;
    }
  }

  private async serveStatic(
    t: Transport,
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendError(
        res,
        405,
        inputError('method-not-allowed', `${req.method ?? ''} is not allowed here`, 'use GET'),
      );
    }
    // Login: /?token=T sets the session cookie and drops the token from the address bar.
    const token = url.searchParams.get('token');
    if (url.pathname === '/' && token !== null) {
      if (t === 'tcp' && !sameSecret(token, this.opts.token)) {
        res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(
          page(
            'Wrong token',
            'Open the address <code>kvmnet serve</code> printed, or read the token in the state dir (<code>api-token</code>).',
          ),
        );
        return;
      }
      res.writeHead(303, {
        'Set-Cookie': `${COOKIE}=${this.session}; HttpOnly; SameSite=Strict; Path=/`,
        Location: '/',
        'Cache-Control': 'no-store',
      });
      res.end();
      return;
    }
    let rel: string;
    try {
      rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname.slice(1));
    } catch {
      return sendError(res, 400, badUrl(url.pathname));
    }
    if (rel.includes('\0')) return sendError(res, 400, badUrl(url.pathname));
    const file = normalize(join(this.opts.webRoot, rel));
    if (!file.startsWith(this.opts.webRoot + sep)) {
      return sendError(res, 404, inputError('not-found', `no file ${url.pathname}`, 'open /'));
    }
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch {
      if (rel === 'index.html') {
        res.writeHead(503, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(
          page(
            'The page is not built',
            'Run <code>npm run build</code> in the kvmnet checkout; the API works without it.',
          ),
        );
        return;
      }
      return sendError(res, 404, inputError('not-found', `no file ${url.pathname}`, 'open /'));
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': data.length,
      'Cache-Control': rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      'Content-Security-Policy':
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      'X-Frame-Options': 'DENY',
    });
    res.end(req.method === 'HEAD' ? undefined : data);
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

function page(title: string, text: string): string {
  return `<!doctype html><meta charset="utf-8"><title>kvmnet: ${title}</title><body style="font-family:system-ui;margin:3em"><h1>${title}</h1><p>${text}</p>`;
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** The body as text, or undefined when it is over MAX_BODY (reading stops there). */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(undefined);
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, e: KvmnetError): void {
  const o: Record<string, string> = { code: e.code, message: e.message };
  if (e.hint !== undefined) o.hint = e.hint;
  if (e.field !== undefined) o.field = e.field;
  o.kind = e.kind;
  sendJson(res, status, JSON.stringify(o));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The request's URL: only origin-form paths ("/api/..."), so "//host/..." or an absolute URL
 * cannot change what the path means. Undefined when it is not one.
 */
function requestUrl(raw: string | undefined): URL | undefined {
  const text = raw ?? '/';
  if (!text.startsWith('/') || text.startsWith('//')) return undefined;
  try {
    return new URL(text, 'http://kvmnet');
  } catch {
    return undefined;
  }
}

function badUrl(text: string): KvmnetError {
  return inputError(
    'bad-url',
    `the URL ${JSON.stringify(text)} is not a valid path`,
    'percent-encode the path as RFC 3986 says',
  );
}
