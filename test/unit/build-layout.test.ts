// The build layout the CLI depends on: `kvmnet serve` finds the page (dist/web) from tsc's module
// (dist/src/cli/serve.js) and from the bundle's chunks (dist/cli/chunks/), and the bundle that
// bin/kvmnet runs is there with its source maps pointing at src/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { webRoot } from '../../src/cli/serve.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

test('webRoot is dist/web of the package from either layout', () => {
  const want = join(REPO, 'dist/web');
  assert.equal(webRoot(), want);
  assert.equal(webRoot(join(REPO, 'dist/src/cli/serve.js')), want);
  assert.equal(webRoot(join(REPO, 'dist/cli/chunks/cli-0123.js')), want);
  assert.ok(existsSync(join(want, 'index.html')), 'npm run build wrote dist/web/index.html');
});

test('the bundle bin/kvmnet runs exists, its source maps name src/', () => {
  assert.match(readFileSync(join(REPO, 'bin/kvmnet'), 'utf8'), /dist\/cli\/main\.js/);
  const chunks = join(REPO, 'dist/cli/chunks');
  const cli = readdirSync(chunks).find((f) => /^cli-.*\.js$/.test(f));
  assert.ok(cli, 'dist/cli/chunks/cli-*.js');
  const map = JSON.parse(readFileSync(join(chunks, `${cli}.map`), 'utf8')) as { sources: string[] };
  assert.ok(map.sources.includes('../../../src/cli/main.ts'), map.sources.join(' '));
});
