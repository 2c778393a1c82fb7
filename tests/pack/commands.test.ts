import t from 'tap'
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { form, makeEnv } from '../helpers/form.js'

const OWNER = '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf'

t.test('pack init writes each template, which then validates and dry-runs', async (t) => {
  const fe = await makeEnv(t)
  const keyFile = join(fe.dir, 'id.pub')
  await writeFile(keyFile, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ada@example\n')
  for (const template of ['static-nginx', 'python-web', 'node-web', 'hello-web', 'docker-compose']) {
    const dir = join(fe.dir, template)
    const init = await form(fe, ['pack', 'init', '--template', template, '--dir', dir, '--ssh-key', keyFile, '--json'])
    t.equal(init.code, 0, init.stderr)
    t.ok(JSON.parse(init.stdout).files.includes('Formfile'))
    t.match(await readFile(join(dir, 'Formfile'), 'utf8'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ada@example')
    const v = await form(fe, ['pack', 'validate', '-f', join(dir, 'Formfile'), '--json'])
    t.equal(v.code, 0, v.stderr)
    const parsed = JSON.parse(v.stdout)
    t.match(parsed, { ok: true, formfile: { users: [{ sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ada@example'] }] } })
    // service-scoped ENV must reach the ENTRYPOINT's unit, which is named after NAME
    if (Object.keys(parsed.formfile.env.services).length) t.same(Object.keys(parsed.formfile.env.services), [parsed.formfile.name], `${template}: ENV --scope=service:<NAME>`)
    const dry = await form(fe, ['pack', 'dry-run', '-f', join(dir, 'Formfile'), '--owner', OWNER, '--json'])
    t.equal(dry.code, 0, dry.stderr)
    t.match(JSON.parse(dry.stdout).buildId, /^[0-9a-f]{64}$/)
  }
  const again = await form(fe, ['pack', 'init', '--template', 'node-web', '--dir', join(fe.dir, 'node-web')])
  t.equal(again.code, 1)
  t.match(again.stderr, /error\[FILES_EXIST\]: .*Formfile.* already exist/)
  t.match(again.stderr, /--force/)
  t.equal((await form(fe, ['pack', 'init', '--template', 'node-web', '--dir', join(fe.dir, 'node-web'), '--force'])).code, 0)
  const unknown = await form(fe, ['pack', 'init', '--template', 'rails'])
  t.match(unknown.stderr, /no template "rails"[\s\S]*docker-compose, hello-web, node-web, python-web, static-nginx/)
})

t.test('pack validate prints compiler-style diagnostics for every error and exits 1', async (t) => {
  const fe = await makeEnv(t)
  const file = join(fe.dir, 'Formfile')
  await writeFile(file, 'NAME demo\nUSER username:ada passwd:secret\nVCPUS 2\nMEM 100\n')
  const r = await form(fe, ['pack', 'validate', '-f', file])
  t.equal(r.code, 1)
  t.match(r.stderr, /Formfile:3:1: error\[unknown-instruction\]: unknown instruction "VCPUS"\n  \|\n3 \| VCPUS 2\n  \| \^\^\^\^\^\n  = hint: did you mean VCPU\?/)
  t.match(r.stderr, /Formfile:4:5: error\[out-of-range\]: MEM 100 is outside 512-256000 MB/)
  t.match(r.stderr, /error\[FORMFILE_INVALID\]: .*Formfile has 2 errors/)
  const json = await form(fe, ['pack', 'validate', '-f', file, '--json'])
  const out = JSON.parse(json.stdout)
  t.same(out.error.details.diagnostics.map((d: { code: string; line: number; column: number }) => [d.code, d.line, d.column]), [['unknown-instruction', 3, 1], ['out-of-range', 4, 5]])
  t.notMatch(json.stdout + r.stderr, /secret/, 'no password in any output')
})

t.test('pack validate prints the normalized Formfile with hashed passwords', async (t) => {
  const fe = await makeEnv(t)
  const file = join(fe.dir, 'Formfile')
  await writeFile(file, 'user username:ada passwd:"top secret" \\\n  sudo:yes\ncpu 2\n')
  const r = await form(fe, ['pack', 'validate', '-f', file])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^VCPU 2\nMEM 512\nDISK 5\n/)
  t.match(r.stdout, /USER username:ada \\\n\s+passwd:\$6\$/)
  t.notMatch(r.stdout, /top secret/)
})

t.test('pack dry-run lists the context honouring .formignore, and the build id follows the documented formula', async (t) => {
  const fe = await makeEnv(t)
  const dir = join(fe.dir, 'proj')
  await mkdir(join(dir, 'app', 'node_modules'), { recursive: true })
  await writeFile(join(dir, 'Formfile'), 'NAME demo\nUSER username:ada lock_passwd:true\nCOPY ./app /app\n')
  await writeFile(join(dir, 'app', 'main.js'), 'console.log(1)\n')
  await writeFile(join(dir, 'app', 'node_modules', 'big.js'), 'x'.repeat(1000))
  await writeFile(join(dir, 'secret.env'), 'TOKEN=1')
  await writeFile(join(dir, '.formignore'), 'node_modules/\n*.env\n')
  await symlink('/etc/passwd', join(dir, 'app', 'link'))
  const r = await form(fe, ['pack', 'dry-run', '-f', join(dir, 'Formfile'), '--owner', OWNER, '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  t.same(out.context.files.map((f: { path: string }) => f.path), ['.formignore', 'Formfile', 'app/main.js'])
  t.same(out.context.symlinks, ['app/link'])
  t.equal(out.context.ignored, 2)
  // hex(SHA3-256(address bytes ‖ "demo")), computed independently
  const { createHash } = await import('node:crypto')
  t.equal(out.buildId, createHash('sha3-256').update(Buffer.concat([Buffer.from(OWNER.slice(2), 'hex'), Buffer.from('demo')])).digest('hex'))
  const human = await form(fe, ['pack', 'dry-run', '-f', join(dir, 'Formfile'), '--owner', OWNER])
  t.match(human.stdout, /steps:\n   1\. USER ada\n   2\. COPY app -> \/app/)
  t.match(human.stdout, /app\/link  \(symlink: not sent\)/)
  const noOwner = await form(fe, ['pack', 'dry-run', '-f', join(dir, 'Formfile')])
  t.equal(noOwner.code, 1)
  t.match(noOwner.stderr, /error\[NO_OWNER\][\s\S]*form kit init/)
})

t.test('a missing Formfile says how to get one', async (t) => {
  const fe = await makeEnv(t)
  const r = await form(fe, ['pack', 'validate', '-f', join(fe.dir, 'nope', 'Formfile')])
  t.equal(r.code, 1)
  t.match(r.stderr, /error\[FORMFILE_NOT_FOUND\]: cannot read .*: no such file\n  hint: .*form pack init/)
})
