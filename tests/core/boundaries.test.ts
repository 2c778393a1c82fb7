import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { ROOT } from '../helpers/form.js'

// A plugin reaches another plugin only through its public face (plugins/<name>/index.ts), so a plugin's
// files can move without breaking its neighbours; the core imports no plugin at all, so a third-party
// plugin sees the same core the built-ins do (the composition of built-ins lives in app/).

/** Every .ts file under `dir`, relative to ROOT. */
function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort()
}

/** The source without comments, so that an example in a doc comment is not taken for an import. */
function stripComments(source: string): string {
  // keeps strings (a URL's `//` is not a comment); template literals hold no import specifiers we care about
  return source.replace(/('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (m, str: string | undefined) => str ?? ' ')
}

/** Every module specifier a file names: static imports (also over several lines), re-exports, side-effect and dynamic imports. */
export function specifiers(source: string): string[] {
  const code = stripComments(source)
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*[,)]/g,
  ]
  return patterns.flatMap((re) => [...code.matchAll(re)].map((m) => m[1]))
}

/** Why `from` may not import `target` (both relative to ROOT), or undefined when it may. */
function violation(from: string, target: string): string | undefined {
  const plugin = (path: string) => /^plugins\/([^/]+)\//.exec(path)?.[1]
  if (from.startsWith('core/') && target.startsWith('plugins/')) return 'the core imports a plugin'
  const own = plugin(from)
  const other = plugin(target)
  if (other !== undefined && own !== other && target !== `plugins/${other}/index.ts`) {
    return `${own === undefined ? from : `plugin "${own}"`} reaches past plugin "${other}"'s public face (plugins/${other}/index.ts)`
  }
  return undefined
}

function violations(file: string, source: string): string[] {
  const out: string[] = []
  for (const spec of specifiers(source)) {
    if (!spec.startsWith('.')) continue
    const target = relative(ROOT, resolve(ROOT, dirname(file), spec)).split(sep).join('/').replace(/\.js$/, '.ts')
    const why = violation(file, target)
    if (why) out.push(`${file} imports ${spec}: ${why}`)
  }
  return out
}

t.test('the import scanner sees every form of import', async (t) => {
  const source = [
    "import a from '../one.js'",
    "import {\n  b,\n  type C,\n} from '../two.js'",
    "import type { D } from '../three.js'",
    "export { e } from '../four.js'",
    "export * from '../five.js'",
    "import '../six.js'",
    "const g = await import('../seven.js')",
    "const h = (await import(\n  '../eight.js'\n)).h",
    "// import x from '../commented.js'",
    "/** await import('../doc.js') */",
    "const url = 'http://example.com' // import('../trailing.js')",
  ].join('\n')
  t.same(specifiers(source).sort(), ['../eight.js', '../five.js', '../four.js', '../one.js', '../seven.js', '../six.js', '../three.js', '../two.js'])
  t.same(violations('plugins/pack/commands/x.ts', "import { y } from '../../manage/commands/shared.js'").length, 1, 'a plugin reaching into another')
  t.same(violations('plugins/pack/commands/x.ts', "const { y } = await import('../../node/lib/vmm/hosts.js')").length, 1, 'also dynamically')
  t.same(violations('plugins/pack/commands/x.ts', "import { y } from '../../manage/index.js'"), [], 'a public face')
  t.same(violations('plugins/pack/commands/x.ts', "import { y } from '../lib/scheduler.js'"), [], 'its own files')
  t.same(violations('core/main.ts', "import kit from '../plugins/kit/index.js'").length, 1, 'the core importing a plugin')
  t.same(violations('app/builtins.ts', "import kit from '../plugins/kit/index.js'"), [], 'the composition importing a public face')
  t.same(violations('app/builtins.ts', "import { x } from '../plugins/kit/lib/x.js'").length, 1, 'the composition reaching past it')
})

t.test('plugins import each other only through index.ts, and the core imports no plugin', async (t) => {
  const files = [...tsFiles('app'), ...tsFiles('core'), ...tsFiles('plugins')]
  t.ok(files.length > 100, `${files.length} files scanned`)
  const found = files.flatMap((file) => violations(file, readFileSync(join(ROOT, file), 'utf8')))
  t.same(found, [], found.join('\n'))
})
