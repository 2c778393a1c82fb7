import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { writeDesiredRecord } from '../../plugins/instances/lib/views.js'
import { form, FORM_BIN, makeEnv, ROOT, startNode } from '../helpers/form.js'

t.test('pack validate refuses the placeholder key pack init writes when it finds no key', async (t) => {
  const home = join(t.testdir(), 'home')
  await mkdir(home)
  const fe = await makeEnv(t, { HOME: home }) // no ~/.ssh: no key to put in
  const dir = join(fe.dir, 'hello')
  const init = await form(fe, ['pack', 'init', '--template', 'hello-web', '--dir', dir])
  t.equal(init.code, 0, init.stderr)
  t.match(init.stdout, /no SSH public key found/)
  const v = await form(fe, ['pack', 'validate', '-f', join(dir, 'Formfile')])
  t.equal(v.code, 1)
  t.match(v.stderr, /Formfile:9:\d+: error\[placeholder-ssh-key\]: ssh_authorized_keys still holds the template's placeholder key/)
  t.match(v.stderr, /hint: put your public key there .*--ssh-key/)
  const json = await form(fe, ['pack', 'validate', '-f', join(dir, 'Formfile'), '--json'])
  t.match(JSON.parse(json.stdout).error, { code: 'FORMFILE_INVALID', details: { diagnostics: [{ code: 'placeholder-ssh-key', line: 9 }] } })
  // building (or previewing) an image nobody could log in to is refused the same way, before anything is sent
  for (const cmd of [['pack', 'build'], ['pack', 'dry-run']]) {
    const r = await form(fe, [...cmd, '-f', join(dir, 'Formfile')])
    t.equal(r.code, 1, `${cmd.join(' ')} exits 1`)
    t.match(r.stderr, /error\[placeholder-ssh-key\]/, `${cmd.join(' ')} names the placeholder key`)
    t.notMatch(r.stderr, /NO_WALLET|upload/i, `${cmd.join(' ')} stops at the Formfile`)
  }

  // with a real key it passes
  const formfile = join(dir, 'Formfile')
  await writeFile(formfile, (await readFile(formfile, 'utf8')).replace('ssh-ed25519 AAAA-replace-with-your-public-key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ada@example'))
  t.equal((await form(fe, ['pack', 'validate', '-f', formfile])).code, 0)
})

t.test('every template logs in as the same user, the one the README uses', async (t) => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  // the walkthrough names the template's user, and logs in with form manage ssh (which takes it from the
  // Formfile) or, where it spells ssh out, as that same user
  const user = /a Formfile: user "(\w+)"/.exec(readme)?.[1]
  t.equal(user, 'dev')
  t.match(readme, /^form manage ssh hello-web-1/m, 'the README logs in with form manage ssh')
  for (const m of readme.matchAll(/^ssh (\w+)@/gm)) t.equal(m[1], user, `the README's \`${m[0]}\` uses the template's user`)
  for (const name of await readdir(join(ROOT, 'templates', 'formfiles'))) {
    const formfile = await readFile(join(ROOT, 'templates', 'formfiles', name, 'Formfile'), 'utf8')
    t.same([...formfile.matchAll(/username:(\S+)/g)].map((m) => m[1]), [user], `${name}: USER username:${user}`)
  }
})

t.test('manage delete asks first; without a terminal it needs --yes', async (t) => {
  const fe = await makeEnv(t)
  const r = await form(fe, ['manage', 'delete', 'web-1'])
  t.equal(r.code, 1)
  t.match(r.stderr, /error\[CONFIRMATION_REQUIRED\]: deleting web-1 cannot be undone, and there is no terminal to ask on\n {2}hint: pass --yes/)
  const build = await form(fe, ['manage', 'delete', '--build-id', 'b'.repeat(64), '--json'])
  t.equal(JSON.parse(build.stdout).error.code, 'CONFIRMATION_REQUIRED')
  const yes = await form(fe, ['manage', 'delete', 'web-1', '--yes'])
  t.notMatch(yes.stderr, /CONFIRMATION_REQUIRED/, 'with --yes it goes on (to the next thing it lacks: a wallet)')
  t.match(yes.stderr, /NO_WALLET|no wallet|kit init/)
  t.equal((await form(fe, ['manage', 'stop', 'web-1'])).stderr.includes('CONFIRMATION_REQUIRED'), false, 'stop does not ask')
})

t.test('manage list leaves deleted instances out unless --all', async (t) => {
  const fe = await makeEnv(t)
  const pw = join(fe.dir, 'pw')
  await writeFile(pw, 'list-all-pass')
  t.equal((await form(fe, ['kit', 'init', '--yes', '--password-file', pw])).code, 0)
  const node = await startNode(fe)
  t.teardown(() => node.stop())
  const signer = await loadSigner({ configDir: fe.configDir, passwordFile: pw })
  const client = createClient({ socket: fe.socket, signer: async (req) => (await import('../../core/auth/sign.js')).signRequest({ ...req, signer }) })
  // hosted by a node that does not exist: nothing boots, the records are all there is
  const base = { buildId: 'c'.repeat(64), image: 'd'.repeat(64), node: '0x' + '9'.repeat(40), vcpus: 1, memoryMb: 256, diskGb: 1 }
  await writeDesiredRecord(client, signer, 'web-1', { ...base, name: 'web-1', state: 'running' })
  await writeDesiredRecord(client, signer, 'web-2', { ...base, name: 'web-2', state: 'deleted' })
  const list = await form(fe, ['manage', 'list', '--json'])
  t.equal(list.code, 0, list.stderr)
  t.same(JSON.parse(list.stdout).instances.map((i: { id: string }) => i.id), ['web-1'])
  t.equal(JSON.parse(list.stdout).hiddenDeleted, 1)
  const human = await form(fe, ['manage', 'list'])
  t.match(human.stdout, /\(1 deleted instance not shown; --all shows them\)/)
  const all = await form(fe, ['manage', 'list', '--all', '--json'])
  t.same(JSON.parse(all.stdout).instances.map((i: { id: string; desired: string }) => [i.id, i.desired]).sort(), [['web-1', 'running'], ['web-2', 'deleted']])
})

t.test('manage delete on a terminal asks, and only "y" deletes', { skip: existsSync('/usr/bin/script') ? false : 'script (util-linux) is not installed' }, async (t) => {
  const fe = await makeEnv(t, { FORM_PASSWORD: 'tty-pass' })
  t.equal((await form(fe, ['kit', 'init', '--yes'])).code, 0)
  const node = await startNode(fe)
  t.teardown(() => node.stop())
  const signer = await loadSigner({ configDir: fe.configDir, env: fe.env } as never)
  const client = createClient({ socket: fe.socket, signer: async (req) => (await import('../../core/auth/sign.js')).signRequest({ ...req, signer }) })
  await writeDesiredRecord(client, signer, 'web-1', { buildId: 'c'.repeat(64), image: 'd'.repeat(64), node: '0x' + '9'.repeat(40), vcpus: 1, memoryMb: 256, diskGb: 1, name: 'web-1', state: 'running' })
  // script(1) gives the command a pseudo-terminal; what we type goes to it
  const onTerminal = (answer: string) =>
    spawnSync('script', ['-qec', `${process.execPath} ${FORM_BIN} manage delete web-1`, '/dev/null'], { env: fe.env, input: answer, encoding: 'utf8', timeout: 60_000 })
  const desired = async () => JSON.parse((await form(fe, ['manage', 'list', '--all', '--json'])).stdout).instances[0].desired
  const no = onTerminal('n\n')
  t.match(no.stdout, /Delete web-1\? The VM, its disk and its address go; this cannot be undone\. \[y\/N\]/)
  t.match(no.stdout, /nothing deleted/)
  t.equal(no.status, 1)
  t.equal(await desired(), 'running', '"n" keeps it')
  const yes = onTerminal('y\n')
  if (yes.status !== 0) t.comment(yes.stdout)
  t.equal(yes.status, 0, 'answering y exits 0')
  t.equal(await desired(), 'deleted', '"y" deletes it')
})
