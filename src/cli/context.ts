// What every command handler gets: the engine (built from global options) and output helpers.
import type { Engine } from '../engine/engine.js';

export interface CliContext {
  engine(): Engine;
  json(): boolean;
  print(text: string): void;
}
