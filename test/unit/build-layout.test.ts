// The build layout the CLI depends on: `kvmnet serve` finds the page (dist/web) from tsc's module
// (dist/src/cli/serve.js) and from the bundle's chunks (dist/cli/chunks/), and the bundle that
// bin/kvmnet runs is there with its source maps pointing at src/; the launcher runs it through a
// symlink, as npm installs it, and drops NODE_EXTRA_CA_CERTS on the way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { webRoot } from '../../src/cli/serve.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

test('webRoot is dist/web of the package from either layout', () => {
  const want = join(REPO, 'dist/web');
  assert.equal(webRoot(), want);
  assert.equal(webRoot(join(REPO, 'dist/src/cli/serve.js')), want);
  assert.equal(webRoot(join(REPO, 'dist/cli/chunks/cli-0123.cjs')), want);
  assert.ok(existsSync(join(want, 'index.html')), 'npm run build wrote dist/web/index.html');
});

test('the bundle bin/kvmnet runs exists, its source maps name src/', () => {
  assert.match(readFileSync(join(REPO, 'bin/kvmnet'), 'utf8'), /dist\/cli\/main\.cjs/);
  const chunks = join(REPO, 'dist/cli/chunks');
  const cli = readdirSync(chunks).find((f) => /^cli-.*\.cjs$/.test(f));
  assert.ok(cli, 'dist/cli/chunks/cli-*.cjs');
  const map = JSON.parse(readFileSync(join(chunks, `${cli}.map`), 'utf8')) as { sources: string[] };
  assert.ok(map.sources.includes('../../../src/cli/main.ts'), map.sources.join(' '));
});

test('bin/kvmnet runs through a symlink as a shell script and drops NODE_EXTRA_CA_CERTS', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kvmnet-bin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const link = join(dir, 'kvmnet');
  symlinkSync(join(REPO, 'bin/kvmnet'), link);
  // Node.js warns on stderr when the file the variable names cannot be read: the warning shows
  // whether the variable reached it.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    NODE_EXTRA_CA_CERTS: join(dir, 'missing.pem'),
  };
  const viaShell = spawnSync(link, ['--version'], { env, encoding: 'utf8' });
  assert.equal(viaShell.status, 0, viaShell.stderr);
  assert.equal(viaShell.stdout.trim(), '0.1.0');
  assert.doesNotMatch(viaShell.stderr, /extra certs/);
  // Run by node directly, line 2 is a string and a comment, and the variable stays in effect.
  const direct = spawnSync(process.execPath, [link, '--version'], { env, encoding: 'utf8' });
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(direct.stdout.trim(), '0.1.0');
  assert.match(direct.stderr, /extra certs/);
});

test('the early bundle bin/kvmnet loads first is there and knows the commands it sends', () => {
  const early = createRequire(import.meta.url)(join(REPO, 'dist/cli-early/early.cjs')) as {
    earlyTarget: (argv: string[]) => { method: string; path: string } | undefined;
    earlyFinish: unknown;
  };
  assert.deepEqual(early.earlyTarget(['node', 'kvmnet', 'net', 'stop', 'default']), {
    method: 'POST',
    path: '/api/networks/default/stop',
    json: false,
    output: 'net',
  });
  assert.equal(typeof early.earlyFinish, 'function');
  assert.match(readFileSync(join(REPO, 'bin/kvmnet'), 'utf8'), /dist\/cli-early\/early\.cjs/);
});
