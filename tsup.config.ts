import { defineConfig } from 'tsup'

// One bundle for core and the built-in plugins (app/ composes them). Heavy modules (libp2p, level, the builder) are
// imported dynamically inside services and execute(), so they land in separate chunks and `form
// --help` never loads them.
export default defineConfig({
  entry: { main: 'app/main.ts', sdk: 'core/sdk.ts' },
  format: ['esm'],
  target: 'node22',
  platform: 'node',
  splitting: true,
  sourcemap: true,
  clean: true,
  // only the SDK has types (`formation-cli/sdk`): what a plugin is written against
  dts: { entry: { sdk: 'core/sdk.ts' } },
  // Bundled in: resolving and reading clipanion's and typanion's many small files costs more start-up
  // time than parsing them from our one chunk.
  noExternal: ['clipanion', 'typanion'],
  // clipanion is CommonJS and calls require('tty'); an ESM bundle needs a real require for that.
  banner: { js: "import { createRequire as __formCreateRequire } from 'node:module'; const require = __formCreateRequire(import.meta.url);" },
})
