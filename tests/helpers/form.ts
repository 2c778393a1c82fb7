import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '../../core/client.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const FORM_BIN = join(ROOT, 'bin', 'form.js')

export interface FormEnv {
  dir: string
  runtimeDir: string
  env: NodeJS.ProcessEnv
  socket: string
  pidFile: string
  logFile: string
  pluginDir: string
  configDir: string
}

interface Teardown {
  testdir(): string
  teardown(fn: () => unknown): void
}

/**
 * An isolated set of directories for one node or one user, so tests can run side by side. The
 * runtime directory is a short path under /tmp: Unix socket paths are limited to 108 bytes.
 */
const testDirs = new WeakMap<Teardown, { base: string; count: number }>()

export async function makeEnv(t: Teardown, extra: NodeJS.ProcessEnv = {}): Promise<FormEnv> {
  // t.testdir() is one directory per test (a second call empties it), so each env gets its own folder in it
  let slot = testDirs.get(t)
  if (!slot) {
    // tap removes the test directory after the teardowns registered before it was made and before
    // the ones registered after: registering one first makes every teardown (nodes stopped) run
    // before the removal, which otherwise raced a live node writing its log (ENOTEMPTY)
    t.teardown(() => {})
    testDirs.set(t, (slot = { base: t.testdir(), count: 0 }))
  }
  const dir = join(slot.base, `env${slot.count++}`)
  await mkdir(dir, { recursive: true })
  const runtimeDir = await mkdtemp(join(tmpdir(), 'form-run-'))
  t.teardown(() => rm(runtimeDir, { recursive: true, force: true }))
  const configDir = join(dir, 'config')
  const dataDir = join(dir, 'data')
  await mkdir(configDir, { recursive: true })
  return {
    dir,
    runtimeDir,
    configDir,
    socket: join(runtimeDir, 'node.sock'),
    pidFile: join(runtimeDir, 'node.pid'),
    logFile: join(dataDir, 'logs', 'node.log'),
    pluginDir: join(dataDir, 'plugins'),
    env: {
      ...process.env,
      FORM_CONFIG_DIR: configDir,
      FORM_DATA_DIR: dataDir,
      FORM_RUNTIME_DIR: runtimeDir,
      FORM_CACHE_DIR: join(dir, 'cache'),
      NO_COLOR: '1',
      // every test node listens on loopback, on a free port
      FORM_LISTEN: '/ip4/127.0.0.1/tcp/0',
      // formnet creates host-wide interfaces; only the tests that run nodes in namespaces turn it on
      FORM_FORMNET: 'off',
      FORM_OPERATOR_CONFIG: undefined,
      FORM_PLUGIN_DIR: undefined,
      ...extra,
    },
  }
}

function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv
}

export interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the built `form` binary (npm test builds dist/ first) with the given environment. */
export function form(fe: FormEnv, args: string[], options: { timeoutMs?: number; input?: string; netns?: string; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const [cmd, ...argv] = inNetns(options.netns, [process.execPath, FORM_BIN, ...args])
    const child = spawn(cmd, argv, { env: fe.env, stdio: ['pipe', 'pipe', 'pipe'], cwd: options.cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`form ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, options.timeoutMs ?? 120_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin.end(options.input ?? '')
  })
}

export interface NodeProcess {
  child: ChildProcess
  output(): string
  /** resolves with the exit code */
  exited: Promise<number | null>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `form node start` in the foreground and waits until its API answers (or it exits). */
export async function startNode(fe: FormEnv, args: string[] = [], timeoutMs = 60_000, netns?: string): Promise<NodeProcess> {
  // `ip netns exec` execs the command, so the child's pid is the node's own
  const [cmd, ...argv] = inNetns(netns, [process.execPath, FORM_BIN, 'node', 'start', ...args])
  const child = spawn(cmd, argv, { env: fe.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let exitCode: number | null | undefined
  void exited.then((c) => (exitCode = c))
  const client = createClient({ socket: fe.socket, timeoutMs: 1000 })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (exitCode !== undefined) throw new Error(`node exited with ${exitCode} during start-up:\n${output}`)
    try {
      const h = await client.get<{ pid: number }>('/v1/health')
      if (h.pid === child.pid) break
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`node did not answer within ${timeoutMs} ms:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (exitCode === undefined) child.kill(signal)
      return exited
    },
  }
}

/**
 * Puts a plugin folder into the plugin directory the way `form plugin add` leaves it, without
 * running npm (the real `plugin add` path has its own test).
 */
export async function linkPlugin(fe: FormEnv, name: string, folder: string): Promise<void> {
  const modules = join(fe.pluginDir, 'node_modules')
  await mkdir(modules, { recursive: true })
  const manifest = join(fe.pluginDir, 'package.json')
  let pkg: { dependencies: Record<string, string> } = { dependencies: {} }
  try {
    pkg = JSON.parse(await readFile(manifest, 'utf8'))
  } catch {
    // first plugin
  }
  pkg.dependencies[name] = `file:${folder}`
  await writeFile(manifest, JSON.stringify(pkg, null, 2))
  await symlink(folder, join(modules, name), 'dir')
}

export function fixture(name: string): string {
  return join(ROOT, 'tests', 'fixtures', 'plugins', name)
}

/**
 * Polls `fn` until it returns a value (not undefined, not a rejection); throws naming `what` after
 * `timeoutMs`. An error with `fatal: true` ends the wait at once (the awaited state cannot come).
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch((error: { fatal?: boolean }) => {
      if (error?.fatal) throw error
      return undefined
    })
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** The address of a running node in state (its node key's wallet address). */
export async function stateAddress(fe: FormEnv): Promise<string> {
  return (await createClient({ socket: fe.socket }).get<{ address: string }>('/v1/state/info')).address
}

/**
 * Environment for nodes that join the network whose genesis admin is the running node of `admin`
 * (a node started with no admins is its own network's genesis admin).
 */
export async function joinEnv(admin: FormEnv): Promise<NodeJS.ProcessEnv> {
  return { FORM_ADMINS: await stateAddress(admin) }
}

/** Admits the nodes of `members` on the admin's node (its own key signs), as `form node admit` does. */
export async function admit(admin: FormEnv, ...members: (FormEnv | string)[]): Promise<string[]> {
  const client = createClient({ socket: admin.socket })
  const out: string[] = []
  for (const m of members) {
    const address = typeof m === 'string' ? m : await stateAddress(m)
    await client.post('/v1/state/members', { address, status: 'admitted' })
    out.push(address)
  }
  return out
}
