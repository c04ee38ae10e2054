// The daemon's drift repair: every few seconds, `kvmnet repair` of every running network
// (src/engine/drift.ts), and a `repair` event on the event stream when it fixed something. A tick
// that finds the state lock held (a CLI command at work) is skipped; the next one looks again.
import { repairDrift, type Finding } from '../engine/drift.js';
import type { Engine } from '../engine/engine.js';

export { DEFAULT_REPAIR_INTERVAL_S } from './defaults.js';
/** How long a round waits for the state lock before it is skipped. */
const LOCK_WAIT_MS = 2000;

/** What a `repair` event carries. */
export interface RepairEvent {
  time: number;
  findings: Finding[];
  remaining: Finding[];
  errors: string[];
}

export class RepairLoop {
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<unknown> | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly emit: (event: 'repair', data: RepairEvent) => void,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Starts ticking every `seconds` (0: off). */
  start(seconds: number): void {
    if (seconds <= 0) return;
    this.timer = setInterval(() => {
      if (!this.busy) this.busy = this.tick().finally(() => (this.busy = undefined));
    }, seconds * 1000);
  }

  /** One check-and-repair round; returns what it found (empty: nothing drifted). */
  async tick(): Promise<RepairEvent | undefined> {
    try {
      const r = await repairDrift(this.engine, [], { dryRun: false, lockTimeoutMs: LOCK_WAIT_MS });
      if (r.findings.length === 0) return undefined;
      const ev: RepairEvent = {
        time: Date.now(),
        findings: r.findings,
        remaining: r.remaining,
        errors: r.errors,
      };
      this.log(
        `repair: fixed ${r.findings.length - r.remaining.length} of ${r.findings.length} differences${r.errors.length ? `; ${r.errors.join('; ')}` : ''}`,
      );
      this.emit('repair', ev);
      return ev;
    } catch (e) {
      // The lock held by a CLI command, or a host error: try again at the next tick.
      this.log(`repair: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.busy;
  }
}
