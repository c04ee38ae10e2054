// Output helpers: aligned tables, JSON, and the human rendering of operation results.
import type { OpResult } from '../engine/engine.js';
import { formatPlan } from '../engine/plan-format.js';

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** Human text for a mutating operation: the full plan on --dry-run, a summary otherwise. */
export function renderResult(r: OpResult): string {
  const out: string[] = [];
  for (const n of r.notes) out.push(`note: ${n}`);
  for (const d of r.definitions) {
    const verb = r.dryRun
      ? { define: 'would define', undefine: 'would undefine', update: 'would update' }
      : { define: 'defined', undefine: 'undefined', update: 'updated' };
    const what = d.forward === undefined ? `network ${d.network}` : `forward ${d.forward} of ${d.network}`;
    out.push(`${what}: ${verb[d.change]}${d.details.length ? ` (${d.details.join(', ')})` : ''}`);
  }
  for (const p of r.plans) {
    if (r.dryRun) out.push(formatPlan(p).trimEnd());
    else if (p.steps.length === 0)
      out.push(`network ${p.network}: ${p.action === 'stop' ? 'not running' : 'running'}, nothing to do`);
    else {
      // An update is a running network brought in line (a forward added, a definition changed).
      const done = { start: 'started', update: 'updated', stop: 'stopped' }[p.action];
      out.push(`network ${p.network}: ${done} (${p.steps.length} step${p.steps.length === 1 ? '' : 's'})`);
    }
  }
  if (out.length === 0) out.push(r.dryRun ? 'nothing to do' : 'no changes');
  return out.join('\n') + '\n';
}
