// Writes man/form*.1 from the command definitions (the same ones that print --help), and lists them in
// package.json's "man" field, which `npm install -g` (and so installer/install.sh) links into
// <prefix>/share/man/man1. Run: npx tsx man/generate.ts  (npm run build does it)
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { builtinPlugins } from '../app/builtins.js'
import { buildCli } from '../core/main.js'
import { renderManPages } from '../core/man.js'
import { VERSION } from '../core/version.js'

const dir = fileURLToPath(new URL('./', import.meta.url))
mkdirSync(dir, { recursive: true })
for (const f of readdirSync(dir)) if (f.endsWith('.1')) rmSync(dir + f)
const pages = renderManPages(buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true }))), VERSION)
for (const page of pages) writeFileSync(dir + page.file, page.content)

const manifestFile = fileURLToPath(new URL('../package.json', import.meta.url))
const text = readFileSync(manifestFile, 'utf8')
const manifest = JSON.parse(text) as { man?: string[] }
manifest.man = pages.map((p) => `./man/${p.file}`).sort()
const updated = JSON.stringify(manifest, null, 2) + '\n'
if (updated !== text) writeFileSync(manifestFile, updated)
console.log(`wrote ${pages.length} man pages to man/${updated !== text ? ' and listed them in package.json' : ''}`)
