#!/usr/bin/env node
// Runs the compiled test files with node's test runner (labs in parallel), then checks that no
// lab namespace or process was left behind. Usage: node scripts/run-tests.mjs [unit|integration|e2e ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const groups = process.argv.slice(2);
const base = join(root, 'dist/test');
const files = [];
const walk = (dir) => {
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (n.endsWith('.test.js')) files.push(p);
  }
};
for (const g of groups.length ? groups : ['unit', 'integration', 'e2e']) {
  try {
    walk(join(base, g));
  } catch {
    /* group without tests */
  }
}
if (files.length === 0) {
  console.error('no test files found; run `npm run build` first');
  process.exit(1);
}
const concurrency = process.env.KVMNET_TEST_CONCURRENCY ?? '4';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], {
  stdio: 'inherit',
});

// Leak check: every lab namespace is named kt<pid>-..., so any left over is a test bug.
const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
const leaked = ns
  .split('\n')
  .map((l) => l.split(' ')[0])
  .filter((n) => n && /^kt\d+-/.test(n));
if (leaked.length) {
  console.error(`LEAK: test namespaces left behind: ${leaked.join(' ')}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
