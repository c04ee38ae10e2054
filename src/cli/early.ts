// The request of a command handed to `kvmnet serve`, sent before the CLI has loaded. bin/kvmnet
// loads this small module first; for `net start NAME`, `net stop NAME`, `net undefine NAME`,
// `port del PORT [--network NET]`, `up` and `down` (each optionally with a final --json, nothing
// else on the line) it connects to the daemon's socket and writes the request the CLI would write
// (src/cli/daemon.ts, with the same path functions). When the daemon takes it, earlyFinish prints
// what the CLI would print for its answer (with the CLI's own functions, src/cli/finish.ts) and the
// CLI's bundle is never loaded (about 16 ms). When it does not (no daemon, a daemon of another
// state dir, a lost connection), the CLI loads, and on reaching the same request takes this one's
// answer instead of asking again (daemonEngine's `early`): the request is made once.
//
// Only these shapes, because for them the CLI's request is known from the command line alone.
// Anything else on the line (another option, --dry-run, --state-dir, --force, a name that starts
// with "-") and every case where the CLI would not ask a daemon (--no-daemon is an option;
// KVMNET_NO_DAEMON, the crash-test hook) leave the command to the CLI alone. The state dir and run
// dir come from KVMNET_STATE_DIR and KVMNET_RUN_DIR or the defaults, as the CLI's options would
// take them.
import { resolve } from 'node:path';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR } from '../engine/paths.js';
import { call, daemonSocket, mayDelegate, networkPath, portPath, type Answer } from './daemon-call.js';
import { answerOutput, errorOf, errorOutput, type OutputKind, type Printed } from './finish.js';

export interface EarlyRequest {
  method: string;
  path: string;
  /** The state dir it named (absolute), and the socket it went to. */
  stateDir: string;
  socket: string;
  /** The daemon's answer (never rejects). */
  answer: Promise<Answer>;
  /** --json ended the line; how the command prints its answer. */
  json: boolean;
  output: OutputKind;
}

/** The API request `argv` (process.argv) amounts to, if it is one the CLI hands over as it stands. */
export function earlyTarget(
  argv: string[],
): { method: string; path: string; json: boolean; output: OutputKind } | undefined {
  const args = argv.slice(2);
  const json = args.at(-1) === '--json';
  if (json) args.pop();
  // A name the CLI would take as an option, or an empty one, is left to the CLI.
  const plain = (x: string | undefined): x is string => x !== undefined && x !== '' && !x.startsWith('-');
  if (args.length === 1 && (args[0] === 'up' || args[0] === 'down'))
    return { method: 'POST', path: `/api/${args[0]}`, json, output: 'updown' };
  const [group, verb, name, opt, value] = args;
  if (group === 'net' && args.length === 3 && plain(name)) {
    if (verb === 'start' || verb === 'stop')
      return { method: 'POST', path: networkPath(name, `/${verb}`), json, output: 'net' };
    if (verb === 'undefine') return { method: 'DELETE', path: networkPath(name), json, output: 'net' };
  }
  if (group === 'port' && verb === 'del' && plain(name)) {
    if (args.length === 3) return { method: 'DELETE', path: portPath(name), json, output: 'portDel' };
    if (args.length === 5 && opt === '--network' && plain(value))
      return { method: 'DELETE', path: portPath(name, value), json, output: 'portDel' };
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
  const answer = call(socket, stateDir, target.method, target.path);
  return { ...target, stateDir, socket, answer };
}

/**
 * When the daemon took the early request (an answer, and not 421 for another state dir): writes
 * what the CLI would write for that answer (its progress notes, then the result or the error) and
 * returns the exit status. Undefined when the CLI has to go on: no daemon listened, it serves
 * another state dir, or the connection was lost after the request (the CLI reports that, from the
 * same answer).
 */
export async function earlyFinish(
  req: EarlyRequest,
  write: (p: Printed) => void = (p) => {
    process.stderr.write(p.stderr);
    process.stdout.write(p.stdout);
  },
): Promise<number | undefined> {
  const a = await req.answer;
  if (a.kind !== 'answer' || a.status === 421) return undefined;
  const progress = a.progress.map((m) => `kvmnet: ${m}\n`).join('');
  write({ stdout: '', stderr: progress });
  if (a.status >= 400) {
    const err = errorOf(a.status, a.body);
    write(errorOutput(err, req.json));
    return err.exitCode;
  }
  write(answerOutput(req.output, a.body, req.json));
  return 0;
}
