// What the CLI and the daemon agree on when the CLI hands a command to `kvmnet serve` (see
// src/cli/daemon.ts): the header naming the client's state dir, and the one carrying the progress
// notes the engine wrote while it served the request (the CLI prints them as it would its own).
import { AsyncLocalStorage } from 'node:async_hooks';

/** The client's --state-dir (absolute): a daemon serving another one answers 421, and the CLI works alone. */
export const STATE_DIR_HEADER = 'x-kvmnet-state-dir';
/** The request's progress notes: a JSON array of strings, percent-encoded (headers are Latin-1). */
export const PROGRESS_HEADER = 'x-kvmnet-progress';

/** The progress notes of the request being served (the engine's note callback adds to it). */
export const requestProgress = new AsyncLocalStorage<string[]>();

/** An engine note: also kept for the request being served, if any. */
export function keepProgress(message: string): void {
  requestProgress.getStore()?.push(message);
}
