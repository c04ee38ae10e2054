// `kvmnet serve` in a lab: the daemon runs in the lab's host namespace; the test reaches its Unix
// socket by path and its TCP port through a forwarder on the root namespace's loopback (each
// connection is carried into the namespace by `ip netns exec … socat`). The forwarder listens on
// the same port number as the daemon, so the Host header a client sends is the daemon's own.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { REPO, type Lab } from './lab.js';
import { Tracked } from './proc.js';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

export interface RequestOptions {
  method?: string;
  /** A value to send as JSON, or a string sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
  /** 'socket' (default: no token needed) or 'tcp' (through the forwarder). */
  via?: 'socket' | 'tcp';
  /** For 'tcp': send the bearer token (default true). */
  token?: boolean | string;
}

/** Carries TCP connections from 127.0.0.1:port of the root namespace to the same port in `ns`. */
export class NsForwarder {
  private readonly children = new Set<ChildProcess>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(ns: string): Promise<NsForwarder> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const a = server.address();
    const fwd = new NsForwarder(server, typeof a === 'object' && a ? a.port : 0);
    server.on('connection', (sock: Socket) => fwd.carry(ns, sock));
    return fwd;
  }

  private carry(ns: string, sock: Socket): void {
    const child = spawn('ip', ['netns', 'exec', ns, 'socat', '-', `TCP:127.0.0.1:${this.port}`], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    this.children.add(child);
    sock.pipe(child.stdin);
    child.stdout.pipe(sock);
    const end = (): void => {
      sock.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    };
    child.on('close', () => {
      this.children.delete(child);
      sock.end();
    });
    child.stdin.on('error', end);
    sock.on('error', end);
    sock.on('close', end);
  }

  async close(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export class Daemon {
  private constructor(
    readonly lab: Lab,
    readonly proc: Tracked,
    readonly forwarder: NsForwarder,
    readonly socket: string,
    readonly token: string,
    /** The login address it printed (http://127.0.0.1:PORT/?token=…). */
    readonly loginUrl: string,
  ) {}

  get port(): number {
    return this.forwarder.port;
  }
  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts `kvmnet serve --json` in the lab's host namespace (extra arguments appended). */
  static async start(lab: Lab, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
    const fwd = await NsForwarder.start(lab.hostNs);
    const proc = Tracked.start(
      'ip',
      [
        'netns',
        'exec',
        lab.hostNs,
        process.execPath,
        join(REPO, 'bin/kvmnet'),
        '--json',
        'serve',
        '--listen',
        `127.0.0.1:${fwd.port}`,
        ...extra,
      ],
      { env: { ...lab.env(), ...env } },
    );
    lab.tracked.push(proc);
    try {
      await proc.waitFor(/"socket"/);
    } catch (e) {
      await fwd.close();
      throw e;
    }
    const line = JSON.parse(proc.output.split('\n').find((l) => l.startsWith('{')) ?? '{}') as {
      url: string;
      socket: string;
      tokenFile: string;
    };
    const token = (await readFile(line.tokenFile, 'utf8')).trim();
    return new Daemon(lab, proc, fwd, line.socket, token, line.url);
  }

  request(path: string, o: RequestOptions = {}): Promise<Reply> {
    const via = o.via ?? 'socket';
    const headers: Record<string, string> = { ...o.headers };
    let payload: string | undefined;
    if (o.body !== undefined) {
      payload = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    if (via === 'tcp' && o.token !== false && headers.authorization === undefined)
      headers.authorization = `Bearer ${typeof o.token === 'string' ? o.token : this.token}`;
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          ...(via === 'socket' ? { socketPath: this.socket } : { host: '127.0.0.1', port: this.port }),
          path,
          method: o.method ?? 'GET',
          headers,
          agent: false,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error(`${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request, but fails the test unless the status is `status` (default 200). */
  async ok<T>(path: string, o: RequestOptions = {}, status = 200): Promise<T> {
    const r = await this.request(path, o);
    if (r.status !== status)
      throw new Error(`${o.method ?? 'GET'} ${path}: ${r.status} (wanted ${status}): ${r.text}`);
    return r.json as T;
  }

  /** Opens the event stream on the socket and collects events until closed. */
  events(): EventStream {
    return new EventStream(this.socket);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
    await this.forwarder.close();
  }
}

export interface ServerEvent {
  event: string;
  data: unknown;
}

export class EventStream {
  readonly events: ServerEvent[] = [];
  private readonly req;
  private buf = '';

  constructor(socket: string) {
    this.req = httpRequest({ socketPath: socket, path: '/api/events', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        this.buf += d;
        let i: number;
        while ((i = this.buf.indexOf('\n\n')) >= 0) {
          const block = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) this.events.push({ event, data: JSON.parse(data) as unknown });
        }
      });
    });
    this.req.on('error', () => {});
    this.req.end();
  }

  /** Waits for an event for which `pred` holds, that arrived after index `from`. */
  async waitFor(pred: (e: ServerEvent) => boolean, from = 0, timeoutMs = 10_000): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.slice(from).find(pred);
      if (e) return e;
      if (Date.now() > deadline)
        throw new Error(
          `no such event in ${timeoutMs} ms: ${JSON.stringify(this.events.slice(from).map((x) => x.event))}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): void {
    this.req.destroy();
  }
}
