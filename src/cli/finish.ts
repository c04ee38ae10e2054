// What a command that changes networks prints, and what an error prints: shared by the CLI
// (src/cli/main.ts, net.ts) and the launcher's early path (src/cli/early.ts), which prints a
// daemon's answer without loading the CLI. One place, so both print the same bytes.
import type { OpResult } from '../engine/engine.js';
import { KvmnetError } from '../model/errors.js';
import { json, renderResult } from './output.js';

export interface Printed {
  stdout: string;
  stderr: string;
}

/**
 * An operation's result: its JSON with --json, else the human summary. `notesApart` (the `net`
 * verbs): the notes go to stderr as `note:` lines, also with --json (where they are in "notes"
 * too); otherwise (`up`, `down`) they open the human text.
 */
export function resultOutput(r: OpResult, asJson: boolean, notesApart: boolean): Printed {
  const stderr = notesApart ? r.notes.map((n) => `note: ${n}\n`).join('') : '';
  const stdout = asJson ? json(r) : renderResult(notesApart ? { ...r, notes: [] } : r);
  return { stdout, stderr };
}

/** `port del`: the port removed (the plan on --dry-run). */
export function portDelOutput(
  r: OpResult & { port: { name: string; id: string } },
  asJson: boolean,
  dryRun: boolean,
): Printed {
  return {
    stdout: asJson ? json(r) : dryRun ? renderResult(r) : `${r.port.name} (${r.port.id}): removed\n`,
    stderr: '',
  };
}

/** How a command prints its answer: `net` verbs, `up`/`down`, `port del`. */
export type OutputKind = 'net' | 'updown' | 'portDel';

/** What the command of `kind` prints for the daemon's answer to it (no dry run). */
export function answerOutput(kind: OutputKind, body: unknown, asJson: boolean): Printed {
  if (kind === 'portDel')
    return portDelOutput(body as OpResult & { port: { name: string; id: string } }, asJson, false);
  return resultOutput(body as OpResult, asJson, kind === 'net');
}

/** An error: `error:` and `hint:` lines on stderr; with --json also {"error": …} on stdout. */
export function errorOutput(err: KvmnetError, asJson: boolean): Printed {
  return {
    stdout: asJson ? json({ error: err.toJSON() }) : '',
    stderr: `error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`,
  };
}

/** The API's error answer as the CLI's error, of its kind (exit 1 or 2; without one, 5xx are failures). */
export function errorOf(status: number, body: unknown): KvmnetError {
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
