// Bundles the CLI (npm run build, after tsc): dist/src/cli/main.js and what it imports, with its
// dependencies, into dist/cli/ - one file to load at start-up instead of about 140 (and without
// zod's locales, which nothing uses), plus chunks for what commands import on demand (the engine,
// the daemon, doctor, zod, YAML and libvirt XML). bin/kvmnet runs dist/cli/main.cjs; dist/src/ stays for the tests.
// The bundle is CommonJS (.cjs, whatever package.json's "type" says): Node.js 20 loads it about 9 ms
// sooner than the same code as an ES module (no module linking, and its CommonJS loader is part of
// Node.js's start-up snapshot; bench/startup.ts).
// The input is tsc's output, so the bundle runs exactly the code the tests test; its source map
// chains tsc's maps, so stack traces (KVMNET_DEBUG=1) name src/**/*.ts. A second, small bundle
// (dist/cli-early/) is what bin/kvmnet loads before the CLI (src/cli/early.ts).
import { readFile } from 'node:fs/promises';
import { defineConfig, type OutputOptions, type Plugin, type RolldownOptions } from 'rolldown';

/** Loads dist/src/**.js with the source map tsc wrote beside it. */
function tscMaps(): Plugin {
  return {
    name: 'kvmnet-tsc-maps',
    async load(id) {
      if (!/\/dist\/src\/.*\.js$/.test(id)) return null;
      const code = await readFile(id, 'utf8');
      const map = await readFile(`${id}.map`, 'utf8').catch(() => null);
      return map === null ? code : { code, map };
    },
  };
}

/** A CommonJS bundle of one of tsc's modules into `dir` (NAME.cjs), with source maps. */
function bundle(name: string, dir: string, output: OutputOptions): RolldownOptions {
  return {
    input: { [name]: `dist/src/cli/${name}.js` },
    platform: 'node',
    plugins: [tscMaps()],
    output: { dir, format: 'cjs', entryFileNames: '[name].cjs', sourcemap: true, cleanDir: true, ...output },
  };
}

export default defineConfig([
  bundle('main', 'dist/cli', {
    chunkFileNames: 'chunks/[name]-[hash].cjs',
    // Everything start-up loads in one file (each module file costs a read and a resolve); what
    // commands import on demand stays in chunks of its own.
    codeSplitting: { groups: [{ name: 'cli', tags: ['$initial'] }] },
  }),
  // What bin/kvmnet loads first (src/cli/early.ts): a few KiB on their own, so that a request to
  // kvmnet serve is on its way before the CLI's bundle loads. Its modules are in that bundle too.
  bundle('early', 'dist/cli-early', { codeSplitting: false }),
]);
