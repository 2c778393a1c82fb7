#!/usr/bin/env node
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`error: form needs Node.js 22 or newer (this is ${process.version}).\n  hint: install a current Node.js, or run it through npx in the project, which pins Node 24\n`)
  process.exit(1)
}
// `form --version` needs only the package manifest.
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-v')) {
  const { readFileSync } = await import('node:fs')
  process.stdout.write(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version + '\n')
  process.exit(0)
}
// V8's code cache for our modules roughly halves start-up after the first run (Node >= 22.1).
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { main } = await import('../dist/main.js')
process.exitCode = await main(process.argv.slice(2))
