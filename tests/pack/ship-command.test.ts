import t from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { form, makeEnv, startNode } from '../helpers/form.js'

const PASSWORD = 'correct horse battery staple'
const FORMFILE = 'NAME web\nUSER username:dev lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests dev@x"\nDISK 5\n'

/** One node (no VMs needed: nothing here gets as far as booting) and a developer with a project. */
async function setUp(t: { testdir(): string; teardown(fn: () => unknown): void }) {
  const env = await makeEnv(t, { FORM_PASSWORD: PASSWORD })
  const r = await form(env, ['kit', 'init', '--yes', '--no-join-formnet'])
  if (r.code !== 0) throw new Error(r.stderr)
  const node = await startNode(env)
  t.teardown(() => node.stop('SIGKILL'))
  const dir = join(env.dir, 'web')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'Formfile'), FORMFILE)
  return { env, dir, run: (args: string[]) => form(env, args, { cwd: dir }) }
}

t.test('pack ship refuses what it cannot ship, with the reason and what to do', async (t) => {
  const { run } = await setUp(t)
  const none = await run(['pack', 'ship', '--json'])
  t.equal(none.code, 1)
  t.match(JSON.parse(none.stdout).error, { code: 'BUILD_NOT_FOUND', message: /you have no build [0-9a-f]{64}/, hint: /form pack build/ })
  for (const [args, message] of [
    [['--replicas', '0'], /--replicas must be a whole number from 1 to 64 \(got "0"\)/],
    [['--replicas', 'two'], /--replicas must be a whole number/],
    [['--failover-after', '2'], /--failover-after must be a whole number of seconds from 5/],
    [['--timeout', '0'], /--timeout must be a positive number/],
    [['--strategy', 'canary'], /--strategy must be one of rolling, immediate \(got "canary"\)/],
    [['--max-unavailable', '0'], /--max-unavailable must be a whole number of at least 1 \(got "0"\)/],
  ] as const) {
    const r = await run(['pack', 'ship', ...args])
    t.equal(r.code, 1, args.join(' '))
    t.match(r.stderr, message)
  }
  const bad = await run(['pack', 'ship', '--build-id', 'nope'])
  t.match(bad.stderr, /--build-id "nope" is not a build id/)
})

t.test('the CLI config holds ship defaults, checked like every field', async (t) => {
  const { env, run } = await setUp(t)
  const file = join(env.configDir, 'config.json')
  const config = JSON.parse(await readFile(file, 'utf8'))
  await writeFile(file, JSON.stringify({ ...config, ship: { replicas: 0 } }))
  const r = await run(['pack', 'ship'])
  t.equal(r.code, 1)
  t.match(r.stderr, /config\.json/, 'the file is named')
  t.match(r.stderr, /ship\.replicas|\.ship/, 'and the field')
  await writeFile(file, JSON.stringify({ ...config, ship: { replicas: 2, failoverAfterS: 30 } }))
  t.match((await run(['pack', 'ship'])).stderr, /you have no build/, 'a valid default is accepted')
})

t.test('manage ssh and get-ip name what is missing', async (t) => {
  const { run } = await setUp(t)
  const ssh = await run(['manage', 'ssh', 'web-1'])
  t.equal(ssh.code, 1)
  t.match(ssh.stderr, /you have no instance "web-1"/)
  const byBuild = await run(['manage', 'ssh', 'a'.repeat(64)])
  t.match(byBuild.stderr, /you have no instances of build a{64}/)
  const ip = await run(['manage', 'get-ip'])
  t.equal(ip.code, 1)
  t.match(ip.stderr, /you have no instances of build [0-9a-f]{64}/, 'get-ip defaults to the build of ./Formfile')
})
