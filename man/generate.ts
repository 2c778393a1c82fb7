// Writes man/form*.1 from the command definitions (the same ones that print --help), man/form-operator.5
// and templates/operator.toml from the plugins' declared settings, and lists the pages in package.json's
// "man" field, which `npm install -g` (and so installer/install.sh) links into <prefix>/share/man/manN.
// Run: npx tsx man/generate.ts  (npm run build does it)
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { builtinPlugins } from '../app/builtins.js'
import { operatorManPage, operatorTemplate } from '../app/operator-template.js'
import { buildCli } from '../core/main.js'
import { renderManPages } from '../core/man.js'
import { VERSION } from '../core/version.js'

const dir = fileURLToPath(new URL('./', import.meta.url))
mkdirSync(dir, { recursive: true })
for (const f of readdirSync(dir)) if (/\.[15]$/.test(f)) rmSync(dir + f)
const pages = renderManPages(buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true }))), VERSION)
pages.push(operatorManPage(VERSION, new Date().toISOString().slice(0, 10)))
const templateFile = fileURLToPath(new URL('../templates/operator.toml', import.meta.url))
const template = operatorTemplate()
if (readFileSync(templateFile, 'utf8') !== template) writeFileSync(templateFile, template)
for (const page of pages) writeFileSync(dir + page.file, page.content)

const manifestFile = fileURLToPath(new URL('../package.json', import.meta.url))
const text = readFileSync(manifestFile, 'utf8')
const manifest = JSON.parse(text) as { man?: string[] }
manifest.man = pages.map((p) => `./man/${p.file}`).sort()
const updated = JSON.stringify(manifest, null, 2) + '\n'
if (updated !== text) writeFileSync(manifestFile, updated)
console.log(`wrote ${pages.length} man pages to man/${updated !== text ? ' and listed them in package.json' : ''}`)
