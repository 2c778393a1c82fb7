import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FORM_BIN, makeEnv, ROOT } from '../helpers/form.js'

const HEAVY = ['libp2p', '@libp2p', 'level', 'classic-level', 'got', '@noble', '@scure', 'execa', 'listr2', 'enquirer', '@iarna/toml']

for (const args of [['--version'], ['--help'], ['node', 'start', '--help']]) {
  t.test(`form ${args.join(' ')} loads no heavy module`, async (t) => {
    const fe = await makeEnv(t)
    const trace = join(fe.dir, 'imports.txt')
    const r = spawnSync(process.execPath, ['--import', join(ROOT, 'tests/helpers/trace-imports.mjs'), FORM_BIN, ...args], {
      env: { ...fe.env, FORM_TRACE_IMPORTS: trace },
      encoding: 'utf8',
    })
    t.equal(r.status, 0, r.stderr)
    const loaded = readFileSync(trace, 'utf8').split('\n').filter(Boolean)
    // --version is answered from the manifest alone; everything else loads the CLI
    t.equal(loaded.some((u) => u.includes('/dist/main.js')), args[0] !== '--version', 'the trace sees what the CLI loads')
    const heavy = loaded.filter((u) => HEAVY.some((h) => u.includes(`/node_modules/${h}/`)))
    t.same(heavy, [], 'no heavy dependency was imported')
  })
}
