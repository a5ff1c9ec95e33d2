import path from 'node:path';
import { defineConfig } from 'vite';

/**
 * The admin console: built into dist/console and served by the service at /admin (src/console.ts).
 * Everything is bundled from npm packages; nothing is loaded from another origin at run time.
 */
export default defineConfig({
  root: __dirname,
  base: '/admin/',
  publicDir: false,
  logLevel: 'warn',
  // Production JSX whatever NODE_ENV says (tests rebuild the console with NODE_ENV=test).
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact', jsxDev: false },
  build: {
    outDir: path.resolve(__dirname, '..', 'dist', 'console'),
    emptyOutDir: true,
    target: 'es2022',
    // The preload polyfill would be an inline script, which the console's CSP refuses.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
