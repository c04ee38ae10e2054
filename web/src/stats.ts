// Per-interface rx/tx rates from the kernel's byte counters (the `stats` event, once a second):
// the difference of two samples over their time apart, kept for the last 60 samples.
import { s } from './dom.js';
import type { LinkCounters, StatsEvent } from './types.js';

export const SAMPLES = 60;

interface Series {
  rx: number[];
  tx: number[];
}

let last: { t: number; links: Record<string, LinkCounters> } | null = null;
const series = new Map<string, Series>();

function toMs(time: number | string): number {
  if (typeof time === 'number') return time > 1e11 ? time : time * 1000;
  return Date.parse(time);
}

function push(buf: number[], v: number): void {
  buf.push(v);
  if (buf.length > SAMPLES) buf.splice(0, buf.length - SAMPLES);
}

/** Takes one sample; returns false if it gave no rates (the first, or a clock that went back). */
export function addSample(ev: StatsEvent): boolean {
  const t = toMs(ev.time);
  const prev = last;
  last = { t, links: ev.links };
  if (!prev || !Number.isFinite(t) || t <= prev.t) return false;
  const dt = (t - prev.t) / 1000;
  for (const [name, now] of Object.entries(ev.links)) {
    const before = prev.links[name];
    if (!before) continue;
    const rx = now.rxBytes - before.rxBytes;
    const tx = now.txBytes - before.txBytes;
    let buf = series.get(name);
    if (!buf) series.set(name, (buf = { rx: [], tx: [] }));
    // A counter that went back: the interface was re-created; no rate for this interval.
    push(buf.rx, rx >= 0 ? rx / dt : 0);
    push(buf.tx, tx >= 0 ? tx / dt : 0);
  }
  for (const name of series.keys()) if (!(name in ev.links)) series.delete(name);
  return true;
}

export function rates(ifname: string): Series | undefined {
  return series.get(ifname);
}

export function formatRate(bps: number | undefined): string {
  if (bps === undefined || !Number.isFinite(bps)) return '–';
  if (bps < 1000) return `${Math.round(bps)} B/s`;
  if (bps < 1000 * 1000) return `${(bps / 1000).toFixed(bps < 10_000 ? 1 : 0)} KB/s`;
  if (bps < 1000 * 1000 * 1000) return `${(bps / 1e6).toFixed(bps < 1e7 ? 1 : 0)} MB/s`;
  return `${(bps / 1e9).toFixed(1)} GB/s`;
}

const W = 84;
const H = 18;

/** A sparkline of one direction's rate; the y scale is the larger of the series' max and 1 KB/s. */
export function sparkline(values: number[], dir: 'rx' | 'tx'): SVGSVGElement {
  const svg = s('svg', {
    class: `spark spark-${dir}`,
    width: W,
    height: H,
    viewBox: `0 0 ${W} ${H}`,
    'aria-hidden': 'true',
  });
  svg.append(s('line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'spark-base' }));
  if (values.length < 2) return svg;
  const max = Math.max(1000, ...values);
  const step = W / (SAMPLES - 1);
  const x0 = W - (values.length - 1) * step;
  const pts = values.map(
    (v, i) => `${(x0 + i * step).toFixed(1)},${(H - 1 - (v / max) * (H - 3)).toFixed(1)}`,
  );
  svg.append(
    s('polygon', { points: `${x0.toFixed(1)},${H} ${pts.join(' ')} ${W},${H}`, class: 'spark-fill' }),
    s('polyline', { points: pts.join(' '), class: 'spark-line' }),
  );
  return svg;
}

/** Fills a `[data-spark=IFNAME]` cell with rx and tx sparklines and their current rates. */
export function drawSpark(cell: HTMLElement): void {
  const ifname = cell.dataset['spark'] ?? '';
  const buf = ifname ? series.get(ifname) : undefined;
  const rows: Node[] = [];
  for (const dir of ['rx', 'tx'] as const) {
    const vals = buf?.[dir] ?? [];
    const line = document.createElement('div');
    line.className = 'spark-row';
    const label = document.createElement('span');
    label.className = `spark-label spark-${dir}`;
    label.textContent = dir;
    const rate = document.createElement('span');
    rate.className = 'spark-rate mono';
    rate.dataset['rate'] = dir;
    rate.textContent = ifname ? formatRate(vals[vals.length - 1]) : '–';
    line.append(label, sparkline(vals, dir), rate);
    rows.push(line);
  }
  cell.replaceChildren(...rows);
}

/** Fills a `[data-rates=IFNAME]` element with the current rates as text. */
export function drawRates(el: HTMLElement): void {
  const buf = series.get(el.dataset['rates'] ?? '');
  el.textContent = buf
    ? `rx ${formatRate(buf.rx[buf.rx.length - 1])} · tx ${formatRate(buf.tx[buf.tx.length - 1])}`
    : '';
}

export function drawAllSparks(root: ParentNode = document): void {
  root.querySelectorAll<HTMLElement>('[data-spark]').forEach(drawSpark);
  root.querySelectorAll<HTMLElement>('[data-rates]').forEach(drawRates);
}
