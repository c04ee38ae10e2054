// What every command handler gets: the engine (built from global options) and output helpers.
import type { Command } from 'commander';
import type { Engine } from '../engine/engine.js';
import type { Delegable } from './daemon.js';

export interface CliContext {
  engine(): Engine;
  /**
   * The calls a running `kvmnet serve` takes over (src/cli/daemon.ts), else this process's engine.
   * Commands that use it are registered with handsOver, so they load the engine only if needed.
   */
  delegable(): Delegable;
  handsOver(c: Command): Command;
  json(): boolean;
  print(text: string): void;
}
