// Writes man/form*.1 from the command definitions (the same ones that print --help).
// Run: npx tsx man/generate.ts  (npm run build does it)
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { builtinPlugins } from '../core/builtins.js'
import { buildCli } from '../core/main.js'
import { renderManPages } from '../core/man.js'
import { VERSION } from '../core/version.js'

const dir = fileURLToPath(new URL('./', import.meta.url))
mkdirSync(dir, { recursive: true })
for (const f of readdirSync(dir)) if (f.endsWith('.1')) rmSync(dir + f)
const pages = renderManPages(buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true }))), VERSION)
for (const page of pages) writeFileSync(dir + page.file, page.content)
console.log(`wrote ${pages.length} man pages to man/`)
