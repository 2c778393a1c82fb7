import t from 'tap'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { ROOT } from '../helpers/form.js'
import { importsOf, tsFiles } from '../helpers/imports.js'

// Every run of `form` loads every command class (the parser and --help need their paths, usage and
// options), so a command file (plugins/<p>/commands/<name>.ts, core/commands/<name>.ts) holds only
// that and loads its implementation, commands/run/<name>.ts, in one dynamic import when it runs. The
// implementations import plainly: they are loaded only for the command that runs. startup.test.ts
// checks what --help loads; this checks the layout that keeps it so, file by file.

/**
 * Command files whose run() stays inline, each with why. The test fails once a file here no longer
 * runs inline (so the list cannot outlive its reason).
 */
const INLINE: Record<string, string> = {
  'core/commands/help.ts': 'core/main uses its routing for every --help, so it is loaded at start-up anyway',
}

/** Why a command file breaks the layout (empty when it keeps it). */
function commandFileProblems(file: string, source: string): string[] {
  const { loaded, dynamic } = importsOf(source)
  const own = `./run/${basename(file, '.ts')}.js`
  const out: string[] = []
  for (const spec of loaded) {
    if (!spec.startsWith('.') && spec !== 'clipanion') out.push(`${file} imports ${spec} statically: a command file needs only clipanion, the core and its own plugin's small modules`)
    if (/(^|\/)run\//.test(spec)) out.push(`${file} imports ${spec} statically: an implementation is loaded when the command runs`)
  }
  for (const spec of dynamic) if (spec !== own) out.push(`${file} imports ${spec} dynamically: its run() loads ${own} alone`)
  return out
}

/** Why an implementation module breaks the layout. */
function runModuleProblems(file: string, source: string): string[] {
  return importsOf(source).dynamic.map((spec) => `${file} imports ${spec} dynamically: an implementation imports statically (it is loaded only to run)`)
}

const commandDirs = () => ['core/commands', ...tsFiles('plugins').filter((f) => /^plugins\/[^/]+\/commands\/[^/]+\.ts$/.test(f)).map((f) => f.replace(/\/[^/]+$/, ''))]

t.test('the layout check sees what breaks it', async (t) => {
  const ok = "import { Command, Option } from 'clipanion'\nimport { FormCommand } from '../../../core/command.js'\nimport type { X } from '../lib/x.js'\nexport class A extends FormCommand {\n  async run() {\n    return (await import('./run/init.js')).a(this)\n  }\n}"
  t.same(commandFileProblems('plugins/kit/commands/init.ts', ok), [], 'the layout itself')
  t.equal(commandFileProblems('plugins/kit/commands/init.ts', "import { join } from 'node:path'\n" + ok).length, 1, 'a node built-in')
  t.equal(commandFileProblems('plugins/kit/commands/init.ts', "import { createLibp2p } from 'libp2p'\n" + ok).length, 1, 'a heavy package')
  t.equal(commandFileProblems('plugins/kit/commands/init.ts', "import { a } from './run/init.js'\n" + ok).length, 1, 'its implementation, statically')
  t.equal(commandFileProblems('plugins/kit/commands/init.ts', ok.replace("'./run/init.js'", "'./run/show.js'")).length, 1, "another command's implementation")
  t.equal(commandFileProblems('plugins/kit/commands/init.ts', ok + "\nconst { readFile } = await import('node:fs/promises')").length, 1, 'a scattered dynamic import')
  t.same(runModuleProblems('plugins/kit/commands/run/init.ts', "import { join } from 'node:path'\nexport async function a() {}"), [], 'an implementation importing statically')
  t.equal(runModuleProblems('plugins/kit/commands/run/init.ts', "export async function a() {\n  const { join } = await import('node:path')\n}").length, 1, 'an implementation importing dynamically')
})

t.test('command files hold their class and load their implementation in one import', async (t) => {
  const dirs = [...new Set(commandDirs())]
  t.ok(dirs.length >= 7, `${dirs.length} command directories`)
  const files = dirs.flatMap((d) => tsFiles(d).filter((f) => !f.slice(d.length + 1).includes('/')))
  const commands = files.filter((f) => /\bstatic\s+override\s+paths\b/.test(readFileSync(`${ROOT}/${f}`, 'utf8')))
  t.ok(commands.length >= 35, `${commands.length} command files`)
  const found = files.flatMap((f) => commandFileProblems(f, readFileSync(`${ROOT}/${f}`, 'utf8')))
  t.same(found, [], found.join('\n'))
  for (const file of commands) {
    const source = readFileSync(`${ROOT}/${file}`, 'utf8')
    const lazy = importsOf(source).dynamic.length > 0
    if (INLINE[file]) t.notOk(lazy, `${file} runs inline (${INLINE[file]}) and is listed so`)
    else t.ok(lazy, `${file} loads ./run/${basename(file, '.ts')}.js to run`)
  }
  const runModules = dirs.flatMap((d) => tsFiles(`${d}/run`))
  t.ok(runModules.length >= 35, `${runModules.length} implementation modules`)
  const dynamic = runModules.flatMap((f) => runModuleProblems(f, readFileSync(`${ROOT}/${f}`, 'utf8')))
  t.same(dynamic, [], dynamic.join('\n'))
})
