// Keeps docs/reliability.md true to the tests. Each table row of that page ends in a Cases cell
// such as `17 (NAT_DRIFT_CASES)` with the name in backticks; the name must be an array exported by
// a module in test/lib/cases/ and the count its length. Every exported case array must be named
// on the page, and some test file must import it (otherwise the row counts cases nobody runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/test/unit
const REPO = resolve(HERE, '../../..');
const CASES_JS = resolve(HERE, '../lib/cases');
const DOC = join(REPO, 'docs/reliability.md');

interface Row {
  line: number;
  count: number;
  names: string[];
}

/** Table rows whose last cell is "N (`A`, `B`)": N must equal the summed lengths of A, B. */
function rows(md: string): Row[] {
  const out: Row[] = [];
  md.split('\n').forEach((text, i) => {
    if (!text.startsWith('|') || /^\|[\s:|-]+\|$/.test(text)) return;
    const cells = text.split('|').slice(1, -1);
    const last = (cells[cells.length - 1] ?? '').trim();
    const m = /^(\d[\d,]*)\s*\((.+)\)$/.exec(last);
    if (!m) return;
    const names = [...(m[2] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((x) => x[1] ?? '');
    if (names.length) out.push({ line: i + 1, count: Number((m[1] ?? '').replace(/,/g, '')), names });
  });
  return out;
}

async function caseArrays(): Promise<Map<string, { file: string; length: number }>> {
  const arrays = new Map<string, { file: string; length: number }>();
  let files: string[] = [];
  try {
    files = readdirSync(CASES_JS).filter((f) => f.endsWith('.js'));
  } catch {
    /* no case modules yet */
  }
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(CASES_JS, f)).href)) as Record<string, unknown>;
    for (const [name, v] of Object.entries(mod)) {
      if (/^[A-Z][A-Z0-9_]*_CASES$/.test(name) && Array.isArray(v))
        arrays.set(name, { file: f, length: v.length });
    }
  }
  return arrays;
}

function testSources(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) {
      if (n !== 'cases') testSources(p, out);
    } else if (n.endsWith('.ts')) out.push(readFileSync(p, 'utf8'));
  }
  return out;
}

test('every Cases count in docs/reliability.md equals the length of the case list it names', async () => {
  const arrays = await caseArrays();
  const problems: string[] = [];
  for (const r of rows(readFileSync(DOC, 'utf8'))) {
    let sum = 0;
    for (const n of r.names) {
      const a = arrays.get(n);
      if (!a)
        problems.push(`docs/reliability.md:${r.line}: \`${n}\` is not an array exported by test/lib/cases/`);
      else sum += a.length;
    }
    if (r.names.every((n) => arrays.has(n)) && sum !== r.count) {
      problems.push(
        `docs/reliability.md:${r.line}: says ${r.count} cases, ${r.names.join(' + ')} has ${sum}`,
      );
    }
  }
  assert.deepEqual(problems, []);
});

test('every case list in test/lib/cases/ is named in docs/reliability.md and used by a test', async () => {
  const arrays = await caseArrays();
  const named = new Set(rows(readFileSync(DOC, 'utf8')).flatMap((r) => r.names));
  const sources = testSources(join(REPO, 'test'));
  const problems: string[] = [];
  for (const [name, { file }] of arrays) {
    if (!named.has(name))
      problems.push(`${name} (test/lib/cases/${file}) is not in a docs/reliability.md table`);
    if (!sources.some((s) => new RegExp(`\\b${name}\\b`).test(s))) {
      problems.push(`${name} (test/lib/cases/${file}) is not used by any test`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the row parser reads counts and names', () => {
  const r = rows('| a | b |\n|---|---|\n| x | 1,024 (`A_CASES`, `B_CASES`) |\n| y | prose |');
  assert.deepEqual(r, [{ line: 3, count: 1024, names: ['A_CASES', 'B_CASES'] }]);
});
