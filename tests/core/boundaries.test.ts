import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { ROOT } from '../helpers/form.js'
import { specifiers, stripComments, tsFiles } from '../helpers/imports.js'

// A plugin reaches another plugin only through its public face (plugins/<name>/index.ts), so a plugin's
// files can move without breaking its neighbours; the core imports no plugin at all, so a third-party
// plugin sees the same core the built-ins do (the composition of built-ins lives in app/).

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

// The instance domain (records, keys, schema, host assignment, placement, views) has one home,
// plugins/instances: node, pack, manage and net use it through its public face. A second copy would
// show as a declaration of one of its exported names elsewhere, or as instance keys made or taken
// apart by hand.

/** The names a file declares at its top level (functions, classes, constants, types). */
export function declared(source: string, exportedOnly = false): string[] {
  const re = exportedOnly
    ? /^export\s+(?:declare\s+)?(?:async\s+)?(?:function\s*\*?|class|const|let|var|interface|type|enum)\s*([A-Za-z_$][\w$]*)/gm
    : /^(?:export\s+)?(?:declare\s+)?(?:async\s+)?(?:function\s*\*?|class|const|let|var|interface|type|enum)\s*([A-Za-z_$][\w$]*)/gm
  return [...stripComments(source).matchAll(re)].map((m) => m[1])
}

/** Code that makes or parses instance keys, or declares their collection, by hand. */
const HAND_MADE: [RegExp, string][] = [
  [/name:\s*['"]instances['"]/, 'declares the `instances` collection'],
  [/\}\/desired`/, 'builds a desired key by hand (desiredKey)'],
  [/\/observed\/\$\{/, 'builds an observed key by hand (observedKey)'],
  [/\]\s*===\s*['"](?:desired|observed)['"]/, 'takes an instance key apart by hand (parseInstanceKey)'],
  [/['"`]\/(?:desired|observed)\/?['"`]/, 'matches instance keys by hand (parseInstanceKey)'],
]

/**
 * Files that still do, each with why and when it ends. The test fails once a file here no longer
 * does it (so the list cannot outlive its reason).
 */
const PENDING: Record<string, string> = {}

function domainViolations(file: string, source: string, domain: Set<string>): string[] {
  if (file.startsWith('plugins/instances/')) return []
  const out = declared(source)
    .filter((name) => domain.has(name))
    .map((name) => `${file} declares ${name}, which plugins/instances exports: import it from plugins/instances/index.ts`)
  const code = stripComments(source)
  for (const [re, what] of HAND_MADE) if (re.test(code)) out.push(`${file} ${what}: use plugins/instances/index.ts`)
  return out
}

t.test('the domain check sees a second copy of the instance domain', async (t) => {
  const domain = new Set(['hostsOf', 'DesiredInstance', 'followInstances'])
  t.same(declared('export function hostsOf() {}\nconst x = 1\n  const inner = 2\nexport async function* followInstances() {}\ninterface DesiredInstance {}'), ['hostsOf', 'x', 'followInstances', 'DesiredInstance'])
  t.same(domainViolations('plugins/pack/lib/x.ts', 'function hostsOf() {}', domain).length, 1, 'a function of the domain declared again')
  t.same(domainViolations('plugins/manage/lib/x.ts', 'export interface DesiredInstance { image: string }', domain).length, 1, 'a record type declared again')
  t.same(domainViolations('plugins/instances/lib/hosts.ts', 'export function hostsOf() {}', domain), [], 'its home declares it')
  t.same(domainViolations('plugins/pack/lib/x.ts', "import { hostsOf } from '../../instances/index.js'\nhostsOf()", domain), [], 'using it through the public face')
  t.same(domainViolations('plugins/node/lib/x.ts', "const key = `${owner}/${id}/desired`", domain).length, 1, 'a desired key built by hand')
  t.same(domainViolations('plugins/node/lib/x.ts', "const key = `${owner}/${id}/observed/${node}`", domain).length, 1, 'an observed key built by hand')
  t.same(domainViolations('plugins/net/lib/x.ts', "const p = r.key.split('/')\nif (p[2] === 'observed') {}", domain).length, 1, 'a key taken apart by hand')
  t.same(domainViolations('plugins/pack/lib/x.ts', "if (r.key.endsWith('/desired')) {}", domain).length, 1, 'a key matched by hand')
  t.same(domainViolations('plugins/node/lib/x.ts', "export const c = [{ name: 'instances', rules: [] }]", domain).length, 1, 'the collection declared again')
  t.same(domainViolations('plugins/net/lib/x.ts', "if (k?.kind === 'observed') {}\n/** `<owner>/<id>/desired` */", domain), [], 'a parsed key, and a doc comment')
})

t.test('the instance domain is declared in plugins/instances alone', async (t) => {
  const home = tsFiles('plugins/instances')
  t.ok(home.includes('plugins/instances/index.ts') && home.includes('plugins/instances/lib/hosts.ts'), 'the home exists')
  const domain = new Set(home.flatMap((file) => declared(readFileSync(join(ROOT, file), 'utf8'), true)))
  for (const name of ['parseInstanceKey', 'desiredKey', 'DesiredInstance', 'ObservedInstance', 'hostsOf', 'place', 'candidatesFrom', 'followInstances', 'instanceViews', 'instanceCollections']) {
    t.ok(domain.has(name), `plugins/instances exports ${name}`)
  }
  const files = [...tsFiles('app'), ...tsFiles('core'), ...tsFiles('plugins')]
  const found = files.flatMap((file) => domainViolations(file, readFileSync(join(ROOT, file), 'utf8'), domain))
  const pending = found.filter((v) => Object.keys(PENDING).some((file) => v.startsWith(`${file} `)))
  const rest = found.filter((v) => !pending.includes(v))
  t.same(rest, [], rest.join('\n'))
  for (const [file, why] of Object.entries(PENDING)) t.ok(pending.some((v) => v.startsWith(`${file} `)), `${file} is listed as pending (${why}) and still needs to be`)
})
