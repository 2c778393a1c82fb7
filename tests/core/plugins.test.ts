import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fixture, form, linkPlugin, makeEnv, ROOT, startNode } from '../helpers/form.js'
import { createClient } from '../../core/client.js'

t.test('built-in plugins: --version, --help and plugin list work on an empty machine', async (t) => {
  const fe = await makeEnv(t)
  const version = await form(fe, ['--version'])
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), pkg.version)
  const help = await form(fe, ['--help'])
  t.equal(help.code, 0)
  for (const cmd of ['form node start', 'form node status', 'form plugin add']) t.match(help.stdout, cmd)
  const list = await form(fe, ['plugin', 'list', '--json'])
  t.equal(list.code, 0, list.stderr)
  const names = JSON.parse(list.stdout).plugins.map((p: { name: string }) => p.name)
  t.same(names.sort(), ['core', 'instances', 'kit', 'manage', 'net', 'node', 'pack', 'state'])
})

t.test('the template plugin installs with `form plugin add`, adds a command and a node service', async (t) => {
  const fe = await makeEnv(t)
  const add = await form(fe, ['plugin', 'add', join(ROOT, 'templates', 'plugin'), '--json'])
  t.equal(add.code, 0, add.stderr)
  t.match(JSON.parse(add.stdout), { installed: 'form-plugin-hello', plugin: 'hello', commands: ['form hello'], services: ['hello'] })

  const hello = await form(fe, ['hello', 'Ada', '--json'])
  t.equal(hello.code, 0, hello.stderr)
  t.same(JSON.parse(hello.stdout), { greeting: 'hello, Ada' })
  t.equal(hello.stderr, '', 'a healthy plugin prints no warning')

  const list = JSON.parse((await form(fe, ['plugin', 'list', '--json'])).stdout)
  t.match(list.plugins.find((p: { name: string }) => p.name === 'hello'), { builtin: false, status: 'loaded', services: ['hello'] })

  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const client = createClient({ socket: fe.socket })
  t.same(await client.get('/v1/hello/greeting'), { greeting: 'hello from a plugin service' })
  t.equal(await node.stop(), 0)

  const rm = await form(fe, ['plugin', 'remove', 'form-plugin-hello'])
  t.equal(rm.code, 0, rm.stderr)
  const after = await form(fe, ['hello'])
  t.not(after.code, 0, 'the command is gone with the plugin')
})

t.test('a plugin that does not load is refused by `plugin add` and left uninstalled', async (t) => {
  const fe = await makeEnv(t)
  const add = await form(fe, ['plugin', 'add', fixture('broken')])
  t.equal(add.code, 1)
  t.match(add.stderr, /error\[PLUGIN_BROKEN\]: plugin "fixture-broken" was not installed: this plugin is broken on purpose/)
  const pkg = JSON.parse(await readFile(join(fe.pluginDir, 'package.json'), 'utf8'))
  t.same(pkg.dependencies ?? {}, {}, 'not left in the plugin manifest')
  await t.rejects(readFile(join(fe.pluginDir, 'node_modules', 'fixture-broken', 'package.json')), { code: 'ENOENT' }, 'nor in node_modules')
})

t.test('broken, incompatible and duplicate plugins are skipped with one line each; the CLI keeps working', async (t) => {
  const fe = await makeEnv(t)
  await linkPlugin(fe, 'fixture-broken', fixture('broken'))
  await linkPlugin(fe, 'fixture-old-api', fixture('old-api'))
  await linkPlugin(fe, 'fixture-dup-command', fixture('dup-command'))
  const r = await form(fe, ['--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, 'form node start', 'help still lists the built-in commands')
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 3, r.stderr)
  t.match(r.stderr, /warning: plugin "fixture-broken" skipped: this plugin is broken on purpose/)
  t.match(r.stderr, /warning: plugin "fixture-old-api" skipped: it was written for plugin API v0, this form provides v1/)
  t.match(r.stderr, /warning: plugin "fixture-dup-command" skipped: its command "form node start" is already provided by plugin "node"/)

  // the built-in command was not hijacked
  const status = await form(fe, ['node', 'status'])
  t.equal(status.code, 3)
  t.notMatch(status.stdout, /hijacked/)
  const list = JSON.parse((await form(fe, ['plugin', 'list', '--json'])).stdout)
  t.same(list.plugins.filter((p: { status: string }) => p.status === 'error').map((p: { name: string }) => p.name).sort(), ['fixture-broken', 'fixture-dup-command', 'fixture-old-api'])
})

t.test('apiVersion is a version or a range of whole versions', async (t) => {
  const { apiVersionAccepts } = await import('../../core/loader.js')
  for (const range of [1, '1', '^1', '~1', '1.x', '=1', 'v1', '>=1', '>0', '<2', '<=1', '>=1 <3', '0 || 1', '*']) t.equal(apiVersionAccepts(range, 1), true, `${JSON.stringify(range)} admits 1`)
  for (const range of [0, 2, '^2', '>1', '<1', '>=2 <4', '0 || 2']) t.equal(apiVersionAccepts(range, 1), false, `${JSON.stringify(range)} does not admit 1`)
  for (const range of [1.5, '', 'banana', '^1.2', '1.2.3', '>=', undefined, null, {}]) t.equal(apiVersionAccepts(range, 1), undefined, `${JSON.stringify(range)} is no range`)
})

t.test('a plugin that declares its API as a range loads; one whose range excludes this form is skipped, naming it', async (t) => {
  const fe = await makeEnv(t)
  await linkPlugin(fe, 'fixture-api-range', fixture('api-range'))
  await linkPlugin(fe, 'fixture-future-api', fixture('future-api'))
  const r = await form(fe, ['ranged'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'ranged plugin ran\n')
  t.equal(r.stderr, 'warning: plugin "fixture-future-api" skipped: it was written for plugin API ">=2 <4", this form provides v1; upgrade the plugin\n')
})

t.test('the table of a plugin that is not installed is a warning in the log, not a refusal to start', async (t) => {
  const fe = await makeEnv(t)
  const { writeFile } = await import('node:fs/promises')
  await writeFile(join(fe.configDir, 'operator.toml'), '[hello]\ngreeting = "left behind by form plugin remove"\n')
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const status = JSON.parse((await form(fe, ['node', 'status', '--json'])).stdout)
  t.equal(status.running, true)
  t.equal(await node.stop(), 0)
  t.match(await readFile(fe.logFile, 'utf8'), /WARN  .*operator\.toml: unknown table \[hello\]: ignored \{"hint":"no loaded plugin is named \\"hello\\"; known tables are \[core\], \[kit\]/)
})
