import t from 'tap'
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { FORM_BIN, makeEnv, ROOT, until } from '../helpers/form.js'

const PINNED = join(ROOT, 'node_modules', 'node', 'bin', 'node')

/**
 * A directory holding a `node` that says it is v20 (Debian 12's): a real Node whose process.version(s)
 * are rewritten before any script runs, so bin/form.js sees exactly what it would see on Node 20.
 */
function oldNodeDir(dir: string): string {
  const bin = join(dir, 'old-node')
  mkdirSync(bin, { recursive: true })
  const patch = 'Object.defineProperty(process,"versions",{value:{...process.versions,node:"20.11.1"}});Object.defineProperty(process,"version",{value:"v20.11.1"})'
  writeFileSync(join(bin, 'node'), `#!/bin/sh\nexec ${PINNED} --import 'data:text/javascript,${patch}' "$@"\n`)
  chmodSync(join(bin, 'node'), 0o755)
  return bin
}

function run(cmd: string, args: string[], options: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, ...options })
  return { code: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), error: r.error }
}

t.test('form runs through the symlink npm link makes, when the node on PATH is v20', async (t) => {
  const dir = t.testdir()
  const old = oldNodeDir(dir)
  t.equal(run(join(old, 'node'), ['-p', 'process.versions.node']).stdout.trim(), '20.11.1', 'the stub node reports v20')
  // npm link: <prefix>/bin/form -> <prefix>/lib/node_modules/formation-cli/bin/form.js -> the worktree
  mkdirSync(join(dir, 'lib', 'node_modules'), { recursive: true })
  mkdirSync(join(dir, 'bin'))
  symlinkSync(ROOT, join(dir, 'lib', 'node_modules', 'formation-cli'))
  symlinkSync('../lib/node_modules/formation-cli/bin/form.js', join(dir, 'bin', 'form'))
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(dir, 'bin')}:${old}:/usr/bin:/bin`, FORM_CONFIG_DIR: join(dir, 'config'), FORM_DATA_DIR: join(dir, 'data'), FORM_RUNTIME_DIR: join(dir, 'run'), NO_COLOR: '1' }
  delete env.FORM_REEXEC

  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version
  const r = run('form', ['--version'], { env })
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim(), version, 'form --version prints the package version')

  // a command that loads the CLI runs on Node >= 22: the pinned one, not the one PATH finds
  const list = run('form', ['plugin', 'list', '--json'], { env })
  t.equal(list.code, 0, list.stderr)
  t.ok(JSON.parse(list.stdout).plugins.some((p: { name: string }) => p.name === 'kit'), 'the full CLI ran')

  // without the re-exec, the same stub node is refused: the test above could fail
  const bare = run('form', ['--version'], { env: { ...env, FORM_REEXEC: '1' } })
  t.equal(bare.code, 1)
  t.match(bare.stderr, /needs Node\.js 22 or newer \(this is v20\.11\.1\)/)

  // the exit status of the re-run command comes back
  const bad = run('form', ['no-such-command'], { env })
  t.equal(bad.code, 1, 'a failing command fails through the re-exec too')
})

t.test('a signal sent to the re-exec parent reaches form', async (t) => {
  const fe = await makeEnv(t) // a short runtime dir: socket paths are limited
  const old = oldNodeDir(fe.dir)
  const env: NodeJS.ProcessEnv = { ...fe.env, PATH: `${old}:/usr/bin:/bin`, FORM_REEXEC: undefined }
  const { spawn } = await import('node:child_process')
  // no controlling terminal (setsid): SIGINT is passed on too, as for a script or a service
  const child = spawn('setsid', [join(old, 'node'), FORM_BIN, 'node', 'start'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  // the node's signal handlers are in place once its API answers
  const client = createClient({ socket: fe.socket, timeoutMs: 1000 })
  const health = await until('the node to answer', () => client.get<{ pid: number }>('/v1/health'), 60_000).catch((error: Error) => {
    child.kill('SIGKILL')
    throw new Error(`${error.message}\n${out}`)
  })
  const nodePid = health.pid
  t.not(nodePid, child.pid, 'the node runs in the re-executed child')
  child.kill('SIGTERM')
  t.equal(await exited, 0, `the node stopped cleanly and the parent passed its status on\n${out}`)
  t.throws(() => process.kill(nodePid, 0), 'the child is gone')
})

t.test('installer/install.sh installs a packed form that runs and has man pages', async (t) => {
  const dir = t.testdir()
  const old = oldNodeDir(dir)
  const pack = run('npm', ['pack', ROOT, '--pack-destination', dir, '--json'], { cwd: dir })
  t.equal(pack.code, 0, pack.stderr)
  const tarball = join(dir, (JSON.parse(pack.stdout) as { filename: string }[])[0].filename)
  const prefix = join(dir, 'prefix')
  const root = join(dir, 'root')
  // Debian's Node may be 20: the installed form must run all the same (PATH's node is the v20 stub)
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${old}:${process.env.PATH}`, npm_config_prefer_offline: 'true' }
  delete env.FORM_REEXEC
  const started = Date.now()
  const install = run('bash', [join(ROOT, 'installer', 'install.sh'), '--no-packages', '--node', '--prefix', prefix, '--root', root, '--from', tarball], { env })
  t.comment(`install took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  t.equal(install.code, 0, install.stderr)

  const version = run(join(prefix, 'bin', 'form'), ['--version'], { env })
  t.equal(version.code, 0, version.stderr)
  t.equal(version.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version)
  const help = run(join(prefix, 'bin', 'form'), ['pack', '--help'], { env: { ...env, NO_COLOR: '1' } })
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /form pack build/, 'the installed CLI loads')

  const manDir = join(prefix, 'share', 'man')
  const pages = readdirSync(join(manDir, 'man1'))
  t.ok(pages.includes('form.1') && pages.includes('form-pack-build.1'), 'npm linked the man pages into <prefix>/share/man/man1')
  await t.test('man opens the installed pages', { skip: existsSync('/usr/bin/man') ? false : 'man is not installed (apt-get install man-db)' }, async (t) => {
    const where = run('man', ['-w', 'form-pack-build'], { env: { ...env, MANPATH: manDir } })
    t.equal(where.code, 0, where.stderr)
    t.match(where.stdout, /form-pack-build\.1/, 'man finds the page through MANPATH')
    const page = run('man', ['-P', 'cat', 'form-pack-build'], { env: { ...env, MANPATH: manDir, MANWIDTH: '80' } })
    t.equal(page.code, 0, page.stderr)
    t.match(page.stdout, /form-pack-build - Build the Formfile/, 'the page renders')
  })

  const unit = join(root, 'etc', 'systemd', 'system', 'form-node.service')
  t.match(readFileSync(unit, 'utf8'), `ExecStart=${prefix}/bin/form node start`, 'the unit runs the installed form')
  await t.test('systemd-analyze verify accepts the unit', { skip: existsSync('/usr/bin/systemd-analyze') ? false : 'systemd-analyze is not installed (apt-get install systemd)' }, async (t) => {
    // verify checks that ExecStart is executable and that the Documentation= man page exists
    const verify = run('systemd-analyze', ['verify', unit], { env: { ...env, MANPATH: manDir } })
    t.equal(verify.code, 0, `systemd-analyze verify: ${verify.stderr}`)
  })
})
