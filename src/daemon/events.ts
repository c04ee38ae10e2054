// Server-Sent Events: the "state" of the host (networks, show, leases) whenever it changes, and the
// kernel's link counters every second. The host is looked at only while somebody listens; a
// change made by the CLI, a hook or the kernel (a guest's carrier, a new lease) shows within the
// poll interval, and a change made through the API at once.
import type { ServerResponse } from 'node:http';
import type { Engine } from '../engine/engine.js';
import { linkStats } from './routes.js';

export const STATE_INTERVAL_MS = 500;
export const STATS_INTERVAL_MS = 1000;
const HEARTBEAT_MS = 15_000;

export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private timers: NodeJS.Timeout[] = [];
  private last = '';
  private busy = false;
  private again = false;

  constructor(
    private readonly engine: Engine,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  get listeners(): number {
    return this.clients.size;
  }

  add(res: ServerResponse): void {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    res.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopTimers();
    });
    // A newcomer gets the whole state now, whatever the others last saw.
    void this.snapshot().then(
      (s) => send(res, 'state', s),
      (e: unknown) => this.log(`events: ${e instanceof Error ? e.message : String(e)}`),
    );
    void this.sendStats([res]);
    if (this.timers.length === 0) this.startTimers();
  }

  /** Something changed through the API: look now rather than at the next tick. */
  poke(): void {
    if (this.clients.size > 0) void this.refresh();
  }

  /** Sends an event (e.g. `repair` from the daemon's drift repair) to every listener. */
  broadcast(event: string, data: unknown): void {
    const s = JSON.stringify(data);
    for (const c of this.clients) send(c, event, s);
  }

  close(): void {
    this.stopTimers();
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private startTimers(): void {
    this.timers = [
      setInterval(() => void this.refresh(), STATE_INTERVAL_MS),
      setInterval(() => void this.sendStats([...this.clients]), STATS_INTERVAL_MS),
      setInterval(() => {
        for (const c of this.clients) c.write(': keep-alive\n\n');
      }, HEARTBEAT_MS),
    ];
  }

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.last = '';
  }

  private async snapshot(): Promise<string> {
    const [networks, show, leases] = await Promise.all([
      this.engine.list(),
      this.engine.show(),
      this.engine.leases(),
    ]);
    return JSON.stringify({ time: Date.now(), networks, show, leases });
  }

  private async refresh(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        const s = await this.snapshot();
        // Compare without the time stamp: only a real change is sent.
        const key = s.replace(/^\{"time":\d+,/, '{');
        if (key !== this.last) {
          this.last = key;
          for (const c of this.clients) send(c, 'state', s);
        }
      } while (this.again);
    } catch (e) {
      this.log(`events: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.busy = false;
    }
  }

  private async sendStats(to: ServerResponse[]): Promise<void> {
    if (to.length === 0) return;
    try {
      const s = JSON.stringify(await linkStats(this.engine));
      for (const c of to) send(c, 'stats', s);
    } catch (e) {
      this.log(`events: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

function send(res: ServerResponse, event: string, data: string): void {
  if (!res.writableEnded) res.write(`event: ${event}\ndata: ${data}\n\n`);
}
