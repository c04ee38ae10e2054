// A readable line diff for golden-file failures (longest common subsequence, with context).

/**
 * A line diff (longest common subsequence) with two lines of context: "-" only in the golden file,
 * "+" only in the rendered text, each with its line number in the golden / rendered text.
 */
export function lineDiff(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Array<{ op: ' ' | '-' | '+'; text: string; old?: number; now?: number }> = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push({ op: ' ', text: a[i]!, old: ++i, now: ++j });
    else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!))
      ops.push({ op: '-', text: a[i]!, old: ++i });
    else ops.push({ op: '+', text: b[j]!, now: ++j });
  }
  const near = (k: number): boolean => ops.slice(Math.max(0, k - 2), k + 3).some((o) => o.op !== ' ');
  const num = (n: number | undefined): string => (n === undefined ? '' : String(n)).padStart(4);
  const out: string[] = [];
  let skipped = false;
  ops.forEach((o, k) => {
    if (!near(k)) {
      skipped = true;
      return;
    }
    if (skipped) out.push('  ...');
    skipped = false;
    // JSON quoting makes tabs and carriage returns visible, and trailing blanks are shown as dots.
    const shown = JSON.stringify(o.text)
      .slice(1, -1)
      .replace(/ +$/, (m) => '·'.repeat(m.length));
    out.push(`${o.op}${num(o.old)}${num(o.now)} | ${shown}`);
  });
  return out.join('\n');
}
