import t from 'tap'
import fc from 'fast-check'
import { parseFormfile, printFormfile, type Formfile } from '../../plugins/pack/lib/formfile/index.js'

const word = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/)
const username = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,10}$/)
const value = fc.oneof(fc.stringMatching(/^[A-Za-z0-9 =:,./$"'\\-]{0,12}$/), word)
const quote = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
const path = fc.array(word, { minLength: 1, maxLength: 3 }).map((p) => p.join('/'))

const user = fc.record({
  name: username,
  passwd: fc.option(fc.stringMatching(/^[A-Za-z0-9 !@#%^&*()_+=-]{1,12}$/), { nil: undefined }),
  sudo: fc.boolean(),
  keys: fc.array(fc.stringMatching(/^ssh-ed25519 [A-Za-z0-9+/]{4,12}$/), { maxLength: 2 }),
  groups: fc.array(username, { maxLength: 2 }),
  continuation: fc.boolean(),
})

/** Valid Formfiles built from random instructions, with random case, spacing and line continuations. */
const formfile = fc
  .record({
    name: fc.option(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/), { nil: undefined }),
    users: fc.uniqueArray(user, { minLength: 1, maxLength: 3, selector: (u) => u.name }),
    vcpu: fc.option(fc.integer({ min: 1, max: 128 }), { nil: undefined }),
    mem: fc.option(fc.integer({ min: 512, max: 256000 }), { nil: undefined }),
    steps: fc.array(
      fc.oneof(
        fc.record({ k: fc.constant('RUN'), cmd: fc.stringMatching(/^[a-z][a-z0-9 &|>.-]{0,20}[a-z0-9]$/) }),
        fc.record({ k: fc.constant('INSTALL'), pkgs: fc.array(fc.stringMatching(/^[a-z0-9][a-z0-9+.-]{1,8}$/), { minLength: 1, maxLength: 3 }) }),
        fc.record({ k: fc.constant('COPY'), src: path, dst: path }),
        fc.record({ k: fc.constant('ENV'), key: fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,6}$/), val: value, scope: fc.constantFrom('none', 'system', 'service', 'user') }),
      ),
      { maxLength: 8 },
    ),
    expose: fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 3 }),
    entry: fc.option(fc.array(value, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    lower: fc.boolean(),
  })
  .map((f) => {
    const kw = (k: string) => (f.lower ? k.toLowerCase() : k)
    const lines: string[] = []
    if (f.name) lines.push(`${kw('NAME')} ${f.name}`)
    for (const u of f.users) {
      const opts = [`username:${u.name}`, u.passwd !== undefined ? `passwd:${quote(u.passwd)}` : 'lock_passwd:true', `sudo:${u.sudo}`]
      if (u.keys.length) opts.push(`ssh_authorized_keys:${quote(u.keys.join(','))}`)
      if (u.groups.length) opts.push(`groups:${u.groups.join(',')}`)
      lines.push(`${kw('USER')} ${opts.join(u.continuation ? ' \\\n   ' : ' ')}`)
    }
    if (f.vcpu) lines.push(`${kw('VCPU')} ${f.vcpu}`)
    if (f.mem) lines.push(`${kw('MEM')} ${f.mem}`)
    for (const s of f.steps) {
      if (s.k === 'RUN') lines.push(`${kw('RUN')} ${s.cmd}`)
      if (s.k === 'INSTALL') lines.push(`${kw('INSTALL')} ${s.pkgs.join(' ')}`)
      if (s.k === 'COPY') lines.push(`${kw('COPY')} ./${s.src} /${s.dst}`)
      if (s.k === 'ENV') {
        const scope = s.scope === 'none' ? '' : s.scope === 'system' ? '--scope=system ' : s.scope === 'service' ? '--scope=service:web ' : `--scope=user:${f.users[0].name} `
        lines.push(`${kw('ENV')} ${scope}${s.key}=${quote(s.val)}`)
      }
    }
    if (f.expose.length) lines.push(`${kw('EXPOSE')} ${f.expose.join(' ')}`)
    if (f.entry) lines.push(`${kw('ENTRYPOINT')} ${JSON.stringify(f.entry)}`)
    return lines.join('\n') + '\n'
  })

/** The Formfile without source positions, which printing cannot preserve. */
function withoutLines(f: Formfile | undefined): unknown {
  return f && { ...f, steps: f.steps.map(({ line: _line, ...s }) => s) }
}

t.test('property: parse(print(parse(x))) equals parse(x) for valid Formfiles', async (t) => {
  fc.assert(
    fc.property(formfile, (src) => {
      const first = parseFormfile(src, { contextDir: '/tmp/prop' })
      if (!first.formfile) throw new Error(`generated Formfile did not parse:\n${src}\n${JSON.stringify(first.diagnostics)}`)
      const second = parseFormfile(printFormfile(first.formfile), { contextDir: '/tmp/prop' })
      t.same(second.diagnostics, [], 'the printed form has no diagnostics')
      return JSON.stringify(withoutLines(second.formfile)) === JSON.stringify(withoutLines(first.formfile))
    }),
    { numRuns: 300 },
  )
})

const KEYWORDS = ['NAME', 'USER', 'VCPU', 'MEM', 'DISK', 'GPU', 'COPY', 'RUN', 'INSTALL', 'ENV', 'ENTRYPOINT', 'EXPOSE', 'WORKDIR', 'DESCRIPTION']

t.test('fuzz: arbitrary input never throws and always terminates', async (t) => {
  let inputs = 0
  const check = (src: string) => {
    inputs++
    const r = parseFormfile(src)
    // every diagnostic points inside the file
    const lines = src.replace(/^\uFEFF/, '').split(/\r?\n/).length
    return r.diagnostics.every((d) => d.line >= 1 && d.line <= lines && d.column >= 1 && typeof d.code === 'string')
  }
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), check), { numRuns: 1000 })
  const tokens = fc.oneof(fc.constantFrom(...KEYWORDS, '\\', '\\\n', '"', "'", '\n', ' ', ':', '=', '[', ']', '--scope=', 'username:', '#', '/', '..'), fc.string({ maxLength: 6 }))
  fc.assert(fc.property(fc.array(tokens, { maxLength: 80 }).map((a) => a.join('')), check), { numRuns: 2000 })
  fc.assert(fc.property(formfile, fc.nat(), fc.string({ maxLength: 4 }), (src, at, junk) => check(src.slice(0, at % (src.length + 1)) + junk + src.slice(at % (src.length + 1)))), { numRuns: 500 })
  // pathological shapes
  for (const src of ['"'.repeat(10_000), '\\\n'.repeat(5_000), 'USER ' + 'a:'.repeat(20_000), 'X'.repeat(50_000), 'RUN ' + '\\'.repeat(10_001)]) check(src)
  t.pass(`${inputs} inputs`)
})
