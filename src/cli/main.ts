// The kvmnet command line: global options, top-level commands (up, down, apply, export), error
// reporting (`error:`/`hint:` lines, exit 2 for bad input, 1 for failures).
import { readFile, writeFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import type { Engine } from '../engine/engine.js';
import { DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, Paths } from '../engine/paths.js';
import { inputError, KvmnetError, oneLine } from '../model/errors.js';
import type { CliContext } from './context.js';
import { registerNet } from './net.js';
import { registerForward } from './forward.js';
import { registerPort } from './port.js';
import { registerLibvirt } from './libvirt.js';
import { registerServe } from './serve.js';
import { registerDoctor } from './doctor.js';
import { registerDrift } from './drift.js';
import { json, renderResult } from './output.js';
import { daemonEngine, daemonSocket, mayDelegate } from './daemon.js';
import { errorOutput, resultOutput } from './finish.js';
import type { EarlyRequest } from './early.js';
import { keepProgress } from '../daemon/progress.js';

export const VERSION = '0.1.0';

export function buildProgram(
  out: (s: string) => void = (s) => process.stdout.write(s),
  /** The request bin/kvmnet already sent for this command line (src/cli/early.ts). */
  early?: EarlyRequest,
): Command {
  const program = new Command('kvmnet');
  let engine: Engine | undefined;
  // The engine's modules load before a command's action runs, not at start-up: --help, --version
  // and bad usage finish without them.
  let EngineClass: typeof Engine | undefined;
  const loadEngine = async (): Promise<void> => {
    EngineClass ??= (await import('../engine/engine.js')).Engine;
  };
  // Commands a running daemon can take (ctx.delegable) load the engine only if they run here.
  const handsOver = new Set<Command>();
  program.hook('preAction', async (_program, action) => {
    if (!handsOver.has(action)) await loadEngine();
  });
  const note = (m: string): void => {
    process.stderr.write(`kvmnet: ${m}\n`);
    // In `kvmnet serve`, the request being served also carries it back to its client.
    keepProgress(m);
  };
  const ctx: CliContext = {
    engine: () => {
      if (!engine) {
        if (!EngineClass) throw new Error('the engine is used before a command action');
        const o = program.opts<{ stateDir: string; runDir: string }>();
        engine = new EngineClass({ paths: new Paths(o.stateDir, o.runDir), note });
      }
      return engine;
    },
    delegable: () => {
      const o = program.opts<{ stateDir: string; runDir: string; daemon: boolean }>();
      return daemonEngine({
        socket: mayDelegate(!o.daemon) ? daemonSocket(o.runDir) : undefined,
        stateDir: o.stateDir,
        local: async () => {
          await loadEngine();
          return ctx.engine();
        },
        note,
        early,
      });
    },
    handsOver: (c) => {
      handsOver.add(c);
      return c;
    },
    json: () => program.opts<{ json: boolean }>().json,
    print: out,
  };

  program
    .version(VERSION)
    .description(
      'Virtual networks for KVM hosts: NAT, isolated and routed networks on Linux bridges, nftables and dnsmasq.',
    )
    .addOption(
      new Option('--state-dir <dir>', 'stored definitions and leases')
        .env('KVMNET_STATE_DIR')
        .default(DEFAULT_STATE_DIR),
    )
    .addOption(
      new Option('--run-dir <dir>', 'what is applied now: records, generated dnsmasq files')
        .env('KVMNET_RUN_DIR')
        .default(DEFAULT_RUN_DIR),
    )
    .option('--json', 'machine-readable output (shapes in docs/cli.md)', false)
    .option(
      '--no-daemon',
      'do the work in this process even when `kvmnet serve` runs (also KVMNET_NO_DAEMON=1); by default net ' +
        'start/stop/undefine/autostart, up, down, port add/del and libvirt interface are handed to it over ' +
        'RUN_DIR/kvmnet.sock',
    )
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `
Exit status: 0 success, 1 a failure on the host (rolled back) or the state lock held by one
other kvmnet for 60 s (error code locked), 2 bad input (nothing changed).

Examples:
  kvmnet up                      # define (first run) and start the default NAT network
  kvmnet net list
  kvmnet net define lab --subnet 10.10.0.0/24 --autostart && kvmnet net start lab
  kvmnet export > networks.yaml && kvmnet apply -f networks.yaml --dry-run

See docs/cli.md for every command and its JSON output.`,
    );

  ctx
    .handsOver(program.command('up'))
    .summary('define the default NAT network (first run) and start every autostart network')
    .description(
      'First run (no kvmnet state yet): define the stock "default" NAT network - bridge virbr0, ' +
        '192.168.122.1/24, DHCP .2-.254, autostart - or the next free 192.168.N.0/24 if the host already ' +
        'uses that subnet (a note says so). Every run: start every autostart network, repairing any that ' +
        'drifted; a network already as defined is left alone (the plan is empty). The networks start ' +
        'together (one ip batch, one nft transaction); if that fails it is undone and they start one at a ' +
        'time, the first failure ending the command. Run it at boot.',
    )
    .option('--dry-run', 'print the plan; change nothing', false)
    .action(async (o: { dryRun: boolean }) => {
      out(resultOutput(await ctx.delegable().up(o), ctx.json(), false).stdout);
    });

  ctx
    .handsOver(program.command('down'))
    .summary('stop every running network (definitions kept)')
    .description(
      'Stop every running network, together (one nft transaction, one ip batch; one at a time if that ' +
        'fails). Definitions are kept; `kvmnet up` starts the autostart ones again.',
    )
    .option('--dry-run', 'print the plan; change nothing', false)
    .action(async (o: { dryRun: boolean }) => {
      out(resultOutput(await ctx.delegable().down(o), ctx.json(), false).stdout);
    });

  program
    .command('apply')
    .summary('make the stored definitions equal to a YAML file')
    .description(
      'Make the stored definitions equal to a YAML file (as written by `kvmnet export`). Running networks ' +
        'follow their new definitions; networks missing from the file are stopped and undefined. Nothing ' +
        'else is started or stopped (autostart is for `kvmnet up`). The whole file is validated first: ' +
        'one bad key or value and nothing changes.',
    )
    .requiredOption('-f, --file <file>', 'definitions file ("-" for standard input)')
    .option('--dry-run', 'print exactly the changes; change nothing', false)
    .action(async (o: { file: string; dryRun: boolean }) => {
      let text: string;
      try {
        text = o.file === '-' ? await readStdin() : await readFile(o.file, 'utf8');
      } catch (e) {
        throw inputError(
          'unreadable-file',
          `cannot read ${o.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
          'check the path',
        );
      }
      const { parseDefinitionsFile } = await import('../model/definitions.js');
      const file = parseDefinitionsFile(text, o.file);
      const r = await ctx.engine().apply(file.networks, file.forwards, { dryRun: o.dryRun });
      out(ctx.json() ? json(r) : renderResult(r));
    });

  program
    .command('export')
    .summary('print the stored definitions as YAML')
    .description(
      'Print the stored definitions (networks and port forwards) as YAML for `kvmnet apply -f`. Ports are not ' +
        'part of the file: they belong to running VMs and are managed with `kvmnet port`.',
    )
    .option('-o, --output <file>', 'write to a file instead of standard output')
    .action(async (o: { output?: string }) => {
      const defs = await ctx.engine().exportDefinitions();
      const { renderDefinitions } = await import('../model/definitions.js');
      const text = ctx.json()
        ? json({
            version: 1,
            networks: Object.fromEntries(defs.networks.map((d) => [d.name, d])),
            forwards: defs.forwards,
          })
        : renderDefinitions(defs.networks, defs.forwards);
      if (o.output) await writeFile(o.output, text);
      else out(text);
    });

  registerNet(program, ctx);
  registerPort(program, ctx);
  registerForward(program, ctx);
  registerLibvirt(program, ctx);
  registerServe(program, ctx, VERSION);
  registerDoctor(program, ctx);
  registerDrift(program, ctx);
  return program;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function wantsJson(argv: string[]): boolean {
  return argv.includes('--json');
}

export async function main(argv: string[], opts: { early?: EarlyRequest } = {}): Promise<void> {
  const program = buildProgram(undefined, opts.early);
  program.exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  // commander's own errors (unknown option, missing argument) as one line, like kvmnet's: its
  // "(Did you mean …?)" joins the line, and control characters of the argument are escaped.
  const outputError = (str: string, write: (s: string) => void): void =>
    write(`${oneLine(str.trimEnd().replace(/\n(?=\()/g, ' '))}\n`);
  const override = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeErr: (s) => process.stderr.write(s), outputError });
    for (const s of c.commands) override(s);
  };
  override(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        process.exit(0);
      process.stderr.write("hint: see 'kvmnet --help' or 'kvmnet COMMAND --help'\n");
      process.exit(2);
    }
    const err =
      e instanceof KvmnetError
        ? e
        : new KvmnetError('internal', e instanceof Error ? e.message : String(e), {
            kind: 'failure',
            hint: 'this is a bug in kvmnet; please report it',
          });
    const p = errorOutput(err, wantsJson(argv));
    process.stdout.write(p.stdout);
    process.stderr.write(p.stderr);
    if (process.env.KVMNET_DEBUG && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exit(err.exitCode);
  }
}
