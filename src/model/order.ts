// The order kvmnet sorts names in (networks, ports, taps, forwards, set elements): the order
// `a.localeCompare(b)` gives for printable ASCII - punctuation, then digits, then letters with
// a lowercase letter before its uppercase one - and, with `numeric`, the order of
// `localeCompare(b, 'en', { numeric: true })`, where runs of digits compare by value ("vm2" before
// "vm10"). Written out rather than asked of ICU: the first localeCompare pages in ICU's collation
// data and every call with a locale or options builds a collator, which together left a long-running
// `kvmnet serve` about 8 MB larger (docs/performance.md, "kvmnet serve").
// Beyond printable ASCII (which no validated name holds) characters sort after it by code point.

/** Printable ASCII by ICU root collation, primary weights: one group per weight. */
const GROUPS = [
  ' ',
  '_',
  '-',
  ',',
  ';',
  ':',
  '!',
  '?',
  '.',
  "'",
  '"',
  '(',
  ')',
  '[',
  ']',
  '{',
  '}',
  '@',
  '*',
  '/',
  '\\',
  '&',
  '#',
  '%',
  '`',
  '^',
  '+',
  '<',
  '=',
  '>',
  '|',
  '~',
  '$',
  '0',
  '1',
  '2',
  '3',
  '4',
  '5',
  '6',
  '7',
  '8',
  '9',
  ...Array.from('abcdefghijklmnopqrstuvwxyz', (c) => c + c.toUpperCase()),
];
const PRIMARY = new Map<string, number>();
GROUPS.forEach((g, i) => {
  for (const c of g) PRIMARY.set(c, i);
});
const DIGITS = PRIMARY.get('0') ?? 0;

const primary = (c: string): number => PRIMARY.get(c) ?? 0x100 + (c.codePointAt(0) ?? 0);
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isUpper = (c: string): boolean => c >= 'A' && c <= 'Z';

/** One collation element: a character's weight, or (numeric) the value of a run of digits. */
type Element = { w: number; upper: boolean } | { num: string };

function elements(s: string, numeric: boolean): Element[] {
  const out: Element[] = [];
  const cs = Array.from(s);
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i] ?? '';
    if (numeric && isDigit(c)) {
      let j = i;
      while (j < cs.length && isDigit(cs[j] ?? '')) j++;
      // Leading zeros do not count: "01" and "1" are the same number.
      out.push({
        num: cs
          .slice(i, j)
          .join('')
          .replace(/^0+(?=.)/, ''),
      });
      i = j - 1;
    } else out.push({ w: primary(c), upper: isUpper(c) });
  }
  return out;
}

function comparePrimary(x: Element, y: Element): number {
  if ('num' in x && 'num' in y)
    return x.num.length - y.num.length || (x.num < y.num ? -1 : x.num > y.num ? 1 : 0);
  // A number weighs as a digit against anything else.
  return ('num' in x ? DIGITS : x.w) - ('num' in y ? DIGITS : y.w);
}

function compare(a: string, b: string, numeric: boolean): number {
  if (a === b) return 0;
  const xs = elements(a, numeric);
  const ys = elements(b, numeric);
  const n = Math.min(xs.length, ys.length);
  for (let i = 0; i < n; i++) {
    const d = comparePrimary(xs[i] as Element, ys[i] as Element);
    if (d !== 0) return Math.sign(d);
  }
  if (xs.length !== ys.length) return xs.length < ys.length ? -1 : 1;
  // Equal but for case: the first letter that differs decides, lowercase first.
  for (let i = 0; i < n; i++) {
    const x = xs[i] as Element;
    const y = ys[i] as Element;
    if ('w' in x && 'w' in y && x.upper !== y.upper) return x.upper ? 1 : -1;
  }
  return 0;
}

/** Like `a.localeCompare(b)` for names (printable ASCII). */
export function compareNames(a: string, b: string): number {
  return compare(a, b, false);
}

/** Like `a.localeCompare(b, 'en', { numeric: true })`: digit runs compare by value. */
export function compareNatural(a: string, b: string): number {
  return compare(a, b, true);
}
