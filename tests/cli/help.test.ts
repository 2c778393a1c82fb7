import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { builtinPlugins } from '../../app/builtins.js'
import { buildCli } from '../../core/main.js'
import { optionsOf } from '../../core/commands/help.js'
import { form, FORM_BIN, makeEnv } from '../helpers/form.js'

t.test('form pack --help, form pack and form help pack list the pack commands', async (t) => {
  const fe = await makeEnv(t)
  for (const args of [['pack', '--help'], ['pack', '-h'], ['pack'], ['help', 'pack']]) {
    const r = await form(fe, args)
    t.equal(r.code, 0, `form ${args.join(' ')}: ${r.stderr}`)
    for (const c of ['validate', 'build', 'ship', 'logs', 'status']) t.match(r.stdout, new RegExp(`^  ${c} +\\S`, 'm'), `form ${args.join(' ')} lists ${c}`)
    t.notMatch(r.stdout, /Command not found/)
  }
  const kit = await form(fe, ['kit', '--help'])
  t.match(kit.stdout, /^ {2}operator +Write the operator config/m)
  const all = await form(fe, ['help'])
  t.equal(all.code, 0)
  t.match(all.stdout, /form pack build/, 'form help lists every command')
  const one = await form(fe, ['help', 'pack', 'ship'])
  t.equal(one.code, 0, one.stderr)
  t.match(one.stdout, /--replicas <n> +How many instances/, 'form help pack ship is the command\'s help, with value names')
  t.notMatch(one.stdout, /#0/, 'no #0 placeholders')
})

t.test('misspelt commands and options get the closest ones suggested', async (t) => {
  const fe = await makeEnv(t)
  const option = await form(fe, ['pack', 'ship', '--replicsa', '3'])
  t.equal(option.code, 1)
  t.match(option.stderr, /error\[UNKNOWN_OPTION\]: `form pack ship` has no option --replicsa\n {2}hint: did you mean --replicas\?/)
  const sub = await form(fe, ['pack', 'biuld'])
  t.equal(sub.code, 1)
  t.match(sub.stderr, /`form pack biuld` is not a command\n {2}hint: did you mean `form pack build`\?/)
  const top = await form(fe, ['mange', 'list'])
  t.match(top.stderr, /did you mean `form manage`\?/)
  const none = await form(fe, ['zzzzzz'])
  t.equal(none.code, 1)
  t.match(none.stderr, /`form zzzzzz` is not a command\n {2}hint: `form help` lists the commands/, 'nothing close: no guess')
  const json = await form(fe, ['pack', 'biuld', '--json'])
  t.equal(JSON.parse(json.stdout).error.code, 'UNKNOWN_COMMAND', '--json gets the error as JSON')
  const missing = await form(fe, ['pack', 'ship', '--replicas'])
  t.match(missing.stderr, /error\[USAGE\]: Not enough arguments to option --replicas\n {2}hint: `form pack ship --help`/)
})

t.test('no command has the same flag twice (every built-in plugin)', async (t) => {
  const defs = buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true }))).definitions()
  t.ok(defs.length > 30, `${defs.length} commands walked`)
  for (const def of defs) {
    const seen = new Map<string, number>()
    for (const name of optionsOf(def).flatMap((o) => o.names)) seen.set(name, (seen.get(name) ?? 0) + 1)
    const twice = [...seen].filter(([, n]) => n > 1).map(([name]) => name)
    t.same(twice, [], `${def.path}: every flag means one thing`)
  }
})

t.test('form pack logs -f follows (it was both --file and --follow)', async (t) => {
  const def = buildCli(builtinPlugins.map((plugin) => ({ plugin, builtin: true }))).definitions().find((d) => d.path === 'form pack logs')!
  const f = optionsOf(def).find((o) => o.names.includes('-f'))
  t.same(f?.names, ['-f', '--follow'])
})

t.test('form completion bash sources in bash and completes', async (t) => {
  const fe = await makeEnv(t)
  const script = await form(fe, ['completion', 'bash'])
  t.equal(script.code, 0, script.stderr)
  const file = join(fe.dir, 'form.bash')
  writeFileSync(file, script.stdout)
  // what bash does on TAB: COMP_WORDS holds the line's words, COMP_CWORD the one being completed
  const complete = (words: string[]) =>
    spawnSync('bash', ['-c', `source ${file} && COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}) && COMP_CWORD=${words.length - 1} && _form_complete && echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' })
  const loaded = spawnSync('bash', ['-c', `source <("${process.execPath}" "${FORM_BIN}" completion bash) && complete -p form`], { env: fe.env, encoding: 'utf8' })
  t.equal(loaded.status, 0, loaded.stderr)
  t.equal(loaded.stderr, '', 'no error while sourcing')
  t.match(loaded.stdout, /complete -o default -F _form_complete form/)
  t.equal(complete(['form', 'pa']).stdout.trim(), 'pack')
  t.same(complete(['form', 'pack', 'b']).stdout.trim().split(' '), ['build'])
  t.same(complete(['form', 'pack', 'ship', '--rep']).stdout.trim(), '--replicas')
  t.same(complete(['form', 'completion', '']).stdout.trim().split(' ').sort(), ['--help', '--json', 'bash', 'fish', 'zsh'])
})

for (const shell of ['zsh', 'fish'] as const) {
  const bin = `/usr/bin/${shell}`
  t.test(`form completion ${shell} is valid ${shell}`, { skip: existsSync(bin) ? false : `${shell} is not installed` }, async (t) => {
    const fe = await makeEnv(t)
    const script = await form(fe, ['completion', shell])
    t.equal(script.code, 0, script.stderr)
    const file = join(fe.dir, `form.${shell}`)
    writeFileSync(file, script.stdout)
    const check = spawnSync(bin, ['-n', file], { encoding: 'utf8' })
    t.equal(check.status, 0, check.stderr)
    if (shell === 'fish') {
      // fish completes a command line on request: what TAB would offer
      const offered = (line: string) => spawnSync('fish', ['-c', `source ${file}; complete -C'${line}'`], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split('\t')[0]).filter(Boolean)
      t.same(offered('form pa'), ['pack'])
      t.same(offered('form pack b'), ['build'])
      t.same(offered('form pack ship --rep'), ['--replicas'])
    } else {
      const loaded = spawnSync('zsh', ['-c', `autoload -Uz compinit && compinit -u && source ${file} && print -r -- $_comps[form]`], { encoding: 'utf8', env: { ...fe.env, HOME: fe.dir } })
      t.equal(loaded.stdout.trim(), '_form_complete', 'zsh has the completion for form')
    }
  })
}

t.test('form completion refuses an unknown shell', async (t) => {
  const fe = await makeEnv(t)
  const r = await form(fe, ['completion', 'tcsh'])
  t.equal(r.code, 1)
  t.match(r.stderr, /no completion for the shell "tcsh"\n {2}hint: use bash, zsh or fish/)
})
