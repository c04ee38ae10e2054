// Builds the web page (web/) into dist/web, which `kvmnet serve` serves at `/`.
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  build: { outDir: '../dist/web', emptyOutDir: true },
});
