import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { builderSkip, shareCachedBase } from '../helpers/builder.js'
import { FORM_BIN, form, makeEnv, startNode, until, type FormEnv } from '../helpers/form.js'

const skip = builderSkip()
const PASSWORD = 'correct horse battery staple'

/** A developer with a wallet and a node whose builder shares the machine's cached Debian base. */
async function setUp(t: { testdir(): string; teardown(fn: () => unknown): void }) {
  const env = await makeEnv(t, { FORM_PASSWORD: PASSWORD })
  const ok = (r: { code: number | null; stdout: string; stderr: string }) => {
    if (r.code !== 0) throw new Error(`form exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    return r
  }
  ok(await form(env, ['kit', 'init', '--yes', '--no-join-formnet']))
  // the base takes minutes cold; every test on this machine shares one
  await shareCachedBase(env)
  const node = await startNode(env)
  t.teardown(() => node.stop('SIGKILL'))
  return { env, node, ok }
}

async function project(dir: string, formfile: string, files: Record<string, string> = {}): Promise<string> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'Formfile'), formfile)
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true })
    await writeFile(join(dir, name), text)
  }
  return dir
}

// a cold build boots a build VM under TCG: minutes, many more on a machine shared by other VMs
function inDir(env: FormEnv, dir: string, args: string[], timeoutMs = 1_500_000) {
  return form(env, args, { timeoutMs, cwd: dir })
}

t.test('form pack build: upload, build, status, logs, a cached rebuild and a failing RUN', { skip }, async (t) => {
  const { env, ok } = await setUp(t)
  const dir = await project(
    join(env.dir, 'app'),
    `NAME cmd-build
USER username:ada lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEb1dTestKeyEb1dTestKeyEb1dTestKeyEb1dTest ada@laptop"
WORKDIR /srv
COPY site /srv/site
RUN cat /srv/site/index.html > /srv/copied.txt
ENTRYPOINT ["/bin/sleep", "infinity"]
EXPOSE 8080
`,
    { 'site/index.html': '<h1>built</h1>\n', '.formignore': 'secret.txt\n', 'secret.txt': 'not sent\n' },
  )
  const first = await inDir(env, dir, ['pack', 'build', '--json'])
  ok(first)
  const out = JSON.parse(first.stdout)
  t.equal(out.status.state, 'built', 'the build ends built')
  t.match(out.status.image, /^[0-9a-f]{64}$/, 'with an image id')
  t.equal(out.status.steps.length, 4, 'one report per step')
  t.notOk(out.status.steps.every((s: { cached: boolean }) => s.cached), 'steps ran')
  // plain progress lines without a terminal
  const second = ok(await inDir(env, dir, ['pack', 'build']))
  t.match(second.stdout, /line 3: WORKDIR \/srv \(cached\)/, 'the plain renderer prints each step with cached/ran')
  t.match(second.stdout, /line 5: RUN cat \/srv\/site\/index.html > \/srv\/copied.txt \(cached\)/)
  const status = JSON.parse(ok(await inDir(env, dir, ['pack', 'status', '--json'])).stdout)
  t.ok(status.status.steps.every((s: { cached: boolean }) => s.cached), 'a second build reports every step cached')
  t.equal(status.status.image, out.status.image, 'and the same image')
  t.equal(status.buildId, out.buildId, 'status finds the build of ./Formfile without --build-id')

  const logs = ok(await inDir(env, dir, ['pack', 'logs', '--build-id', out.buildId]))
  t.match(logs.stdout, /--> image [0-9a-f]{64}/, 'logs print the build log')

  // the manifest and the disk are in the node's blob store
  const client = createClient({ socket: env.socket })
  const builder = await client.get<{ queued: number; running: unknown[] }>('/v1/pack/builder')
  t.same([builder.queued, builder.running.length], [0, 0], 'nothing left queued or running')
  const disk = JSON.parse(spawnSync('cat', [join(String(env.env.FORM_DATA_DIR), 'blobs', 'sha256', out.status.image)], { encoding: 'utf8' }).stdout).disk.sha256
  const diskFile = join(String(env.env.FORM_DATA_DIR), 'blobs', 'sha256', disk)
  t.equal(spawnSync('debugfs', ['-R', 'cat /srv/copied.txt', diskFile], { encoding: 'utf8' }).stdout, '<h1>built</h1>\n', 'the image holds what the steps made')
  t.match(spawnSync('debugfs', ['-R', 'ls /srv/site', diskFile], { encoding: 'utf8' }).stdout, /index\.html/)
  t.notMatch(spawnSync('debugfs', ['-R', 'ls -l /', diskFile], { encoding: 'utf8' }).stdout, /secret|form-copy/, '.formignore is honoured and no staging is left')

  // A failing RUN: a failed record with the step and its output.
  const bad = await project(join(env.dir, 'bad'), 'NAME cmd-fails\nUSER username:ada lock_passwd:true\nRUN echo preparing && echo "it broke" >&2 && exit 3\n')
  const failed = await inDir(env, bad, ['pack', 'build'])
  t.equal(failed.code, 1, 'the build command fails')
  t.match(failed.stderr, /line 3: RUN echo preparing/, 'naming the line of the developer\'s Formfile')
  t.match(failed.stderr, /it broke/, 'with the output')
  const fstatus = JSON.parse((await inDir(env, bad, ['pack', 'status', '--json'])).stdout)
  t.match(fstatus.status, { state: 'failed', error: { code: 'BUILD_STEP_FAILED', line: 3, exitCode: 3 } }, 'the failed record carries the step, its code and exit code')
  t.notOk('output' in fstatus.status.error, 'but not its output, which stays on the builder node')
  t.match(fstatus.failure, { output: /preparing\s+it broke/ }, 'pack status fetches the output from the builder node')
})

t.test('contexts that would leak files are refused before upload', { skip }, async (t) => {
  const { env } = await setUp(t)
  const dir = await project(join(env.dir, 'leaky'), 'NAME leaky\nUSER username:ada lock_passwd:true\nCOPY . /app\n', { 'ok.txt': 'fine\n' })
  await symlink('/etc/shadow', join(dir, 'shadow'))
  const r = await inDir(env, dir, ['pack', 'build', '--json'])
  t.equal(r.code, 1)
  t.match(JSON.parse(r.stdout).error, { code: 'CONTEXT_SYMLINK', message: /shadow/ }, 'an escaping symlink is refused')

  const dotdot = await project(join(env.dir, 'dotdot'), 'NAME dotdot\nUSER username:ada lock_passwd:true\nCOPY ../leaky/ok.txt /app/\n')
  const r2 = await inDir(env, dotdot, ['pack', 'build', '--json'])
  t.equal(r2.code, 1)
  t.match(JSON.parse(r2.stdout).error, { code: 'FORMFILE_INVALID', details: { diagnostics: [{ code: 'path-escapes-context' }] } }, 'a .. path is refused')

  // The node checks again: a hand-made archive with a symlink never reaches a build.
  const tar = await import('tar')
  const evil = join(env.dir, 'evil')
  await mkdir(evil)
  await symlink('/etc', join(evil, 'etc-link'))
  await tar.c({ gzip: true, cwd: evil, file: join(env.dir, 'evil.tar.gz'), portable: true }, ['etc-link'])
  await writeFile(join(env.dir, 'password'), PASSWORD)
  const signer = await loadSigner({ configDir: env.configDir, passwordFile: join(env.dir, 'password') })
  const client = createClient({ socket: env.socket, signer: (req) => signRequest({ ...req, signer }) })
  await t.rejects(client.upload('/v1/pack/contexts', join(env.dir, 'evil.tar.gz')), { code: 'CONTEXT_REFUSED' }, 'the node refuses it')
  const unsigned = createClient({ socket: env.socket })
  await t.rejects(unsigned.upload('/v1/pack/contexts', join(env.dir, 'evil.tar.gz')), { code: 'AUTH_MISSING' }, 'uploads must be signed')
})

t.test('form pack cancel stops a running build and its build VM', { skip }, async (t) => {
  const { env, ok } = await setUp(t)
  const marker = `form-cancel-${process.pid}-${Date.now()}`
  // the build VMs of this node: QEMU runs with its disks under the node's builder work directory
  const work = join(String(env.env.FORM_DATA_DIR), 'builder', 'work')
  const dir = await project(join(env.dir, 'slow'), `NAME slow\nUSER username:ada lock_passwd:true\nRUN echo ${marker}; sleep 600\n`)
  const detached = JSON.parse(ok(await inDir(env, dir, ['pack', 'build', '--detach', '--json'])).stdout)
  t.equal(detached.state, 'requested', '--detach returns once the build is requested')
  // one `pack logs -f`, started before the builder took the build, prints the step's output as it comes
  const follower = spawn(process.execPath, [FORM_BIN, 'pack', 'logs', '-f'], { cwd: dir, env: env.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => follower.kill('SIGKILL'))
  let followed = ''
  follower.stdout!.on('data', (d) => (followed += d))
  follower.stderr!.on('data', (d) => (followed += d))
  const followerExit = new Promise<number | null>((r) => follower.on('exit', r))
  await until('the step to run in the build VM', async () => (followed.includes(marker) && spawnSync('pgrep', ['-f', work]).status === 0 ? true : undefined), 1_200_000)
  ok(await inDir(env, dir, ['pack', 'cancel']))
  t.equal(await followerExit, 0, `pack logs -f ends by itself when the build is cancelled:\n${followed}`)
  const status = await until(
    'the build to be cancelled',
    async () => {
      const s = JSON.parse((await inDir(env, dir, ['pack', 'status', '--json'])).stdout)
      return s.status?.state === 'cancelled' ? s : undefined
    },
    60_000,
  )
  t.equal(status.status.state, 'cancelled', 'the build is recorded cancelled')
  t.not(spawnSync('pgrep', ['-f', work]).status, 0, 'its build VM is gone, and with it what the step started')
  t.notMatch(spawnSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).stdout, /builder\/work/, 'nothing of the build is left mounted')
})
