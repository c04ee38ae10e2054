// The request of a command handed to `kvmnet serve`, sent before the CLI has loaded. bin/kvmnet
// loads this small module first; for `net start NAME`, `net stop NAME`, `up` and `down` (each
// optionally with --json, nothing else on the line) it connects to the daemon's socket, writes the
// request the CLI would write (src/cli/daemon.ts), and only then loads the CLI's bundle (about
// 16 ms) while the daemon works. When the CLI reaches the same request, it takes this one's answer
// instead of asking again (daemonEngine's `early`).
//
// Only these commands, because they are idempotent: should the CLI ever come to another request
// than the one sent here, it sends its own, and a network started or stopped twice is started or
// stopped once. Anything else on the command line (an option, --dry-run, --state-dir, a second
// argument, a name that starts with "-") and every case where the CLI would not ask a daemon
// (--no-daemon is an option; KVMNET_NO_DAEMON, the crash-test hook) leave the command to the CLI
// alone. The state dir and run dir come from KVMNET_STATE_DIR and KVMNET_RUN_DIR or the defaults,
// as the CLI's options would take them.
import { resolve } from 'node:path';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../engine/paths.js';
import { call, daemonSocket, mayDelegate, networkPath, type Answer } from './daemon-call.js';

export interface EarlyRequest {
  method: string;
  path: string;
  /** The state dir it named (absolute), and the socket it went to. */
  stateDir: string;
  socket: string;
  /** The daemon's answer (never rejects). */
  answer: Promise<Answer>;
  /** Settles once the request is written (or no daemon listens): then load the CLI. */
  sent: Promise<void>;
}

/** The API request `argv` (process.argv) amounts to, if it is one the CLI hands over as it stands. */
export function earlyTarget(argv: string[]): { method: string; path: string } | undefined {
  const args = argv.slice(2);
  if (args.at(-1) === '--json') args.pop();
  if (args.length === 1 && (args[0] === 'up' || args[0] === 'down'))
    return { method: 'POST', path: `/api/${args[0]}` };
  const [group, verb, name] = args;
  if (args.length === 3 && group === 'net' && (verb === 'start' || verb === 'stop') && name !== undefined) {
    if (name === '' || name.startsWith('-')) return undefined;
    return { method: 'POST', path: networkPath(name, `/${verb}`) };
  }
  return undefined;
}

/** Sends the request now when `argv` is one of the commands above and a daemon may be asked. */
export function earlyRequest(argv: string[], env: NodeJS.ProcessEnv = process.env): EarlyRequest | undefined {
  const target = earlyTarget(argv);
  if (target === undefined || !mayDelegate(false, env)) return undefined;
  // An empty variable would be taken as it is by the CLI's options: leave that case to the CLI.
  if (env.KVMNET_STATE_DIR === '' || env.KVMNET_RUN_DIR === '') return undefined;
  const stateDir = resolve(env.KVMNET_STATE_DIR ?? DEFAULT_STATE_DIR);
  const socket = daemonSocket(env.KVMNET_RUN_DIR ?? DEFAULT_RUN_DIR);
  let written!: () => void;
  const sent = new Promise<void>((r) => (written = r));
  const answer = call(socket, stateDir, target.method, target.path, undefined, written);
  void answer.then(written);
  return { ...target, stateDir, socket, answer, sent };
}
