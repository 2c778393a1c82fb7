import { defineConfig } from 'tsup'

// One bundle for core and the built-in plugins. Heavy modules (libp2p, level, the builder) are
// imported dynamically inside services and execute(), so they land in separate chunks and `form
// --help` never loads them.
export default defineConfig({
  entry: { main: 'core/main.ts' },
  format: ['esm'],
  target: 'node22',
  platform: 'node',
  splitting: true,
  sourcemap: true,
  clean: true,
  dts: false,
})
