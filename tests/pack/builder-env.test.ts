import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { envFileLines, expandEnv, parseFormfile, printFormfile } from '../../plugins/pack/lib/formfile/index.js'

/** ENV values are data: what the build VM writes into /etc/form/env, sourced by a real shell. */

const parse = (text: string) => {
  const r = parseFormfile(`NAME env\nUSER username:ada lock_passwd:true\n${text}\n`)
  t.same(r.diagnostics.filter((d) => d.severity === 'error'), [], `valid: ${text}`)
  return r.formfile!
}
const envStep = (f: ReturnType<typeof parse>) => f.steps.find((s) => s.kind === 'env') as Extract<(typeof f.steps)[number], { kind: 'env' }>

t.test('a sourced env file expands $NAME and ${NAME}, and never runs $(...) or backticks', async (t) => {
  const dir = t.testdir()
  const marker = join(dir, 'pwned')
  const f = parse(`ENV A='$(touch ${marker})' B="$(touch ${marker}-2) \`touch ${marker}-3\`" C=\${HOME}-x D=/opt/bin:$PATH E='$HOME' F="\\$HOME" G=\\$HOME H='it''s' I="a\\\\b"`)
  const step = envStep(f)
  const file = envFileLines(step)
  const r = spawnSync('sh', ['-c', `${file}printf '%s\\n' "$A" "$B" "$C" "$D" "$E" "$F" "$G" "$H" "$I"`], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/home/ada' } })
  t.equal(r.status, 0, r.stderr)
  t.same(r.stdout.split('\n').slice(0, 9), [`$(touch ${marker})`, `$(touch ${marker}-2) \`touch ${marker}-3\``, '/home/ada-x', '/opt/bin:/usr/bin:/bin', '$HOME', '$HOME', '$HOME', 'its', 'a\\b'])
  for (const m of [marker, `${marker}-2`, `${marker}-3`]) t.notOk(existsSync(m), `${m} was never made`)
})

t.test('the normalized Formfile (what the client sends the builder) keeps every ENV value as it was', async (t) => {
  const f = parse(`ENV A='$(id)' B="x \\$y \\\\ \\"q\\"" C=$PATH D='a"b'`)
  const again = parseFormfile(printFormfile(f)).formfile!
  t.same(envStep(again).vars, envStep(f).vars)
})

t.test('a service EnvironmentFile gets earlier values resolved, nothing executed', async (t) => {
  const f = parse(`ENV --scope=service:env PORT=8080 URL=http://x:\${PORT}/ CMD='$(id)'`)
  t.equal(envFileLines(envStep(f)), 'PORT="8080"\nURL="http://x:8080/"\nCMD="$(id)"\n')
  t.equal(expandEnv('a$B${C}\\$D', { B: '1', C: '2' }), 'a12$D')
})
