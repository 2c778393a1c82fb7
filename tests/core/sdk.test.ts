import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../helpers/form.js'

// A plugin author installs formation-cli and imports `formation-cli/sdk`: these tests do the same, in a
// folder of their own whose node_modules/formation-cli is this checkout, so the types are found through
// package.json's exports exactly as they would be from the published package (npm run build makes them).

const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

function project(t: Test): string {
  const dir = t.testdir()
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(ROOT, join(dir, 'node_modules', 'formation-cli'), 'dir')
  return dir
}

/** Type-checks `files` with a plugin project's tsconfig (node types from this checkout: the folder has no @types). */
function tsc(dir: string, files: string[]) {
  const compilerOptions = { noEmit: true, allowJs: true, checkJs: true, strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] }
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files }))
  return spawnSync(process.execPath, [TSC, '-p', dir], { cwd: dir, encoding: 'utf8' })
}

t.test('the package exports the SDK with its types', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  t.same(pkg.exports['./sdk'], { types: './dist/sdk.d.ts', import: './dist/sdk.js' })
  t.ok(existsSync(join(ROOT, 'dist', 'sdk.d.ts')), 'dist/sdk.d.ts is built (npm run build)')
  const dir = project(t)
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', "const m = await import('formation-cli/sdk'); console.log(JSON.stringify({ keys: Object.keys(m).sort(), api: m.API_VERSION, same: m.definePlugin({ name: 'x' }).name }))"], { cwd: dir, encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  t.same(JSON.parse(r.stdout), { keys: ['API_VERSION', 'definePlugin'], api: 1, same: 'x' }, 'at run time only what needs no shared identity')
})

t.test('the template plugin and a TypeScript plugin type-check against formation-cli/sdk', async (t) => {
  const dir = project(t)
  for (const f of ['index.js', 'package.json']) copyFileSync(join(ROOT, 'templates', 'plugin', f), join(dir, f))
  copyFileSync(join(ROOT, 'tests', 'fixtures', 'sdk', 'typed-plugin.ts'), join(dir, 'typed-plugin.ts'))
  const r = tsc(dir, ['index.js', 'typed-plugin.ts'])
  t.equal(r.status, 0, r.stdout + r.stderr)
  t.equal(r.stdout, '', 'no diagnostics')
})

t.test('the SDK types catch a plugin\'s mistakes', async (t) => {
  const dir = project(t)
  copyFileSync(join(ROOT, 'templates', 'plugin', 'package.json'), join(dir, 'package.json'))
  copyFileSync(join(ROOT, 'tests', 'fixtures', 'sdk', 'wrong-plugin.ts'), join(dir, 'wrong-plugin.ts'))
  const r = tsc(dir, ['wrong-plugin.ts'])
  t.equal(r.status, 2, 'tsc fails')
  t.match(r.stdout, /wrong-plugin\.ts\(8,5\): error TS2322: Type 'boolean' is not assignable to type 'string \| number'/, 'apiVersion is a number or a range')
  t.match(r.stdout, /wrong-plugin\.ts\(13,22\): error TS2554: Expected 2 arguments, but got 1/, 'degraded() names the part and the reason')
  t.match(r.stdout, /wrong-plugin\.ts\(12,9\): error TS2322: Type '\(ctx: ServiceContext<any, never>\) => \{ info: string; \}' is not assignable to type '\(ctx: ServiceContext<any, never>\) => RunningService/, 'info is a function')
  t.match(r.stdout, /wrong-plugin\.ts\(17,41\): error TS2322: Type 'string' is not assignable to type 'never'/, 'dependsOn names only services declared in ServiceHandles')
  t.match(r.stdout, /wrong-plugin\.ts\(18,77\): error TS2345: Argument of type '"count"' is not assignable to parameter of type 'never'/, 'ctx.use takes only what dependsOn lists')
})
