// `kvmnet serve`: the HTTP API and the web page (src/daemon), in the foreground until SIGTERM.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { DEFAULT_PORT, DEFAULT_REPAIR_INTERVAL_S } from '../daemon/defaults.js';
import { inputError } from '../model/errors.js';
import type { CliContext } from './context.js';
import { daemonSocket } from './daemon.js';

/**
 * The built page, dist/web of the package this module belongs to: the nearest directory above it
 * with a package.json. Both dist/src/cli/serve.js (tsc) and the bundle's dist/cli/chunks/*.cjs find it.
 */
export function webRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist/web');
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

interface ServeOpts {
  socket: string | false | undefined;
  listen: string | false;
  allowRemote: boolean;
  tokenFile?: string;
  repairInterval: string;
}

export function registerServe(program: Command, ctx: CliContext, version: string): void {
  program
    .command('serve')
    .summary('serve the HTTP API and the web page (foreground; see docs/api.md)')
    .description(
      'Serve the engine the CLI uses over HTTP: a REST API under /api/ (OpenAPI at /api/openapi.json), a stream ' +
        'of changes (Server-Sent Events at /api/events) and the web page at /. The Unix socket (mode 0600) needs ' +
        'no token; TCP needs the bearer token kept in the state dir (made on first start). It prints the ' +
        "page's address with the token; opening it signs the browser in (an HttpOnly cookie) and drops the token " +
        'from the address bar. Changes take the same state lock as the CLI, which never needs the daemon.',
    )
    .option('--socket <path>', 'the Unix socket (default: RUN_DIR/kvmnet.sock)')
    .option('--no-socket', 'serve TCP only')
    .option(
      '--listen <addr:port>',
      'the TCP address for the page and remote clients',
      `127.0.0.1:${DEFAULT_PORT}`,
    )
    .option('--no-listen', 'serve the Unix socket only')
    .option(
      '--allow-remote',
      'allow --listen on an address other than loopback (clients need the token)',
      false,
    )
    .option('--token-file <path>', 'the bearer token (default: STATE_DIR/api-token)')
    .option(
      '--repair-interval <seconds>',
      'check running networks for drift and repair them this often; a `repair` event tells (0: off)',
      String(DEFAULT_REPAIR_INTERVAL_S),
    )
    .addHelpText(
      'after',
      `
Security: the socket is 0600 (root only). On TCP every /api/ request needs "Authorization: Bearer
TOKEN" or the page's cookie; a write from the page also needs its CSRF header. A wrong or missing
token is answered 401 and changes nothing. Bodies are JSON, at most 64 KiB, and are validated by
the same rules as the CLI (400 names the field). Binding to a non-loopback address is refused
unless --allow-remote; then put TLS in front (a reverse proxy).

Examples:
  kvmnet serve                                   # socket and http://127.0.0.1:8470/
  kvmnet serve --no-listen                       # socket only, for scripts
  curl --unix-socket /run/kvmnet/kvmnet.sock http://kvmnet/api/show
  curl -H "Authorization: Bearer $(cat /var/lib/kvmnet/api-token)" http://127.0.0.1:8470/api/networks

Run it under systemd with contrib/systemd/kvmnet-serve.service.`,
    )
    .action(async (o: ServeOpts) => {
      // A long-running daemon with small bursts of work: keep V8's young generation at its initial
      // 1 MB semi-spaces instead of letting it grow to 16 MB each (about 30 MB of RSS, for nothing),
      // and have V8 favour memory over speed in its heap sizing and collections (--optimize-for-size:
      // idle RSS with 10 networks and 100 ports about 75 -> 58 MB here, bench/serve.ts). Neither is
      // allowed in NODE_OPTIONS; both work when set this early, before the daemon's heap grows.
      (await import('node:v8')).setFlagsFromString('--semi-space-growth-factor=1');
      (await import('node:v8')).setFlagsFromString('--optimize-for-size');
      const interval = Number(o.repairInterval);
      if (!/^\d+(\.\d+)?$/.test(o.repairInterval) || !Number.isFinite(interval))
        throw inputError(
          'bad-repair-interval',
          `--repair-interval ${o.repairInterval} is not a number of seconds`,
          'give e.g. --repair-interval 5, or 0 to turn drift repair off',
        );
      // The daemon (node:http, the API's schemas) loads only here: other commands start without it.
      const [{ ApiServer, parseListen }, { loadOrCreateToken }, { RepairLoop }] = await Promise.all([
        import('../daemon/server.js'),
        import('../daemon/token.js'),
        import('../daemon/repair.js'),
      ]);
      const engine = ctx.engine();
      const listen = o.listen === false ? undefined : parseListen(o.listen);
      const socket = o.socket === false ? undefined : (o.socket ?? daemonSocket(engine.paths.runDir));
      const tokenFile = o.tokenFile ?? join(engine.paths.stateDir, 'api-token');
      const { token, created } = await loadOrCreateToken(tokenFile);
      const server = new ApiServer({
        engine,
        token,
        version,
        webRoot: webRoot(),
        allowRemote: o.allowRemote,
        ...(socket === undefined ? {} : { socket }),
        ...(listen === undefined ? {} : { listen }),
        log: (m) => process.stderr.write(`kvmnet: ${m}\n`),
      });
      const where = await server.start();
      const repair = new RepairLoop(
        engine,
        (event, data) => server.events.broadcast(event, data),
        (m) => process.stderr.write(`kvmnet: ${m}\n`),
      );
      repair.start(interval);
      const login = where.url === undefined ? undefined : `${where.url}?token=${token}`;
      if (ctx.json())
        ctx.print(
          JSON.stringify({
            url: login ?? null,
            socket: where.socket ?? null,
            listen: where.url ?? null,
            tokenFile,
          }) + '\n',
        );
      else {
        if (created) process.stderr.write(`kvmnet: made a new API token in ${tokenFile}\n`);
        if (where.socket) process.stderr.write(`kvmnet: serving the API on unix:${where.socket}\n`);
        if (login) {
          process.stderr.write(`kvmnet: serving the API and the page on ${where.url}; open:\n`);
          ctx.print(`${login}\n`);
        }
      }
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void repair
            .stop()
            .then(() => server.close())
            .then(resolve);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}
