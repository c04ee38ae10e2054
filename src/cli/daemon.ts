// The CLI hands the commands that define, start and stop networks and add and remove ports to a
// running `kvmnet serve`, as virsh hands its commands to libvirtd: `net define`, `net start`,
// `net stop`, `net undefine`, `net autostart`, `up`, `down`, `port add`, `port del` and
// `libvirt interface` become a request on
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
import { resolve } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { failure, KvmnetError } from '../model/errors.js';
import { call, networkPath, portPath } from './daemon-call.js';
import { errorOf } from './finish.js';
import type { EarlyRequest } from './early.js';

export { daemonSocket, mayDelegate, parseResponse } from './daemon-call.js';

/** The engine calls a daemon can take over: the same signatures, answered by the API. */
export type Delegable = Pick<
  Engine,
  | 'define'
  | 'start'
  | 'stop'
  | 'undefine'
  | 'setAutostart'
  | 'up'
  | 'down'
  | 'portAdd'
  | 'portDel'
  | 'libvirtInterface'
>;

function lost(socket: string, message: string): KvmnetError {
  return failure('daemon-lost', `kvmnet serve on ${socket} did not answer: ${message}`, {
    hint: 'the change may or may not have been made: run `kvmnet check`; `--no-daemon` works without the daemon',
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
  /** The request bin/kvmnet sent before the CLI loaded (src/cli/early.ts): used if it is this one. */
  early?: EarlyRequest | undefined;
}): Delegable {
  const stateDir = resolve(opts.stateDir);
  const socket = opts.socket;
  let gone = socket === undefined;
  let early = opts.early;
  const ask = async <T>(method: string, path: string, dryRun: boolean, body?: unknown): Promise<T> => {
    if (gone || socket === undefined) throw new NotTaken();
    const target = dryRun ? withQuery(path, 'dryRun=1') : path;
    const sent = early;
    early = undefined;
    const a =
      sent &&
      body === undefined &&
      sent.method === method &&
      sent.path === target &&
      sent.stateDir === stateDir &&
      sent.socket === socket
        ? await sent.answer
        : await call(socket, stateDir, method, target, body);
    if (a.kind === 'lost') throw lost(socket, a.message);
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
  const net = networkPath;
  return {
    // The input as the API's network body (src/daemon/schemas.ts) takes it: the same fields. A mode
    // that body refuses is left to the engine here, whose error the CLI has always printed.
    define: async (input, o) => {
      const { NETWORK_MODES } = await import('../model/network.js');
      if (!(NETWORK_MODES as readonly string[]).includes(input.mode ?? 'nat'))
        return (await opts.local()).define(input, o);
      return either(
        () => ask('POST', '/api/networks', o.dryRun, input),
        (e) => e.define(input, o),
      );
    },
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
        () => ask('DELETE', portPath(ref, network), o.dryRun),
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
