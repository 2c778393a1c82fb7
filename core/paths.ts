import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/**
 * Every directory the program uses, resolved once. Flags beat environment, environment beats defaults.
 * Defaults follow XDG for users, and /etc, /var/lib, /run for the node when it runs as root.
 */
export interface Paths {
  configDir: string
  dataDir: string
  runtimeDir: string
  cacheDir: string
  pluginDir: string
  /** the operator config file (TOML); may not exist */
  operatorConfig: string
  /** true when operatorConfig was named explicitly (then it must exist) */
  operatorConfigExplicit: boolean
  /** the node API socket */
  socket: string
  pidFile: string
  logFile: string
}

export interface PathOverrides {
  configDir?: string
  dataDir?: string
  runtimeDir?: string
  config?: string
}

type Env = Record<string, string | undefined>

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

export function resolvePaths(overrides: PathOverrides = {}, env: Env = process.env, root = isRoot()): Paths {
  const home = env.HOME || homedir()
  const pick = (flag: string | undefined, envName: string, fallback: string) => resolve(flag || env[envName] || fallback)
  // As root without XDG overrides the node behaves like a system service.
  const system = root && !env.XDG_CONFIG_HOME && !env.XDG_DATA_HOME
  const configDir = pick(overrides.configDir, 'FORM_CONFIG_DIR', system ? '/etc/form' : join(env.XDG_CONFIG_HOME || join(home, '.config'), 'form'))
  const dataDir = pick(overrides.dataDir, 'FORM_DATA_DIR', system ? '/var/lib/form' : join(env.XDG_DATA_HOME || join(home, '.local', 'share'), 'form'))
  const runtimeDir = pick(
    overrides.runtimeDir,
    'FORM_RUNTIME_DIR',
    system ? '/run/form' : env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'form') : join(dataDir, 'run'),
  )
  const cacheDir = pick(undefined, 'FORM_CACHE_DIR', system ? '/var/cache/form' : join(env.XDG_CACHE_HOME || join(home, '.cache'), 'form'))
  const explicit = overrides.config || env.FORM_OPERATOR_CONFIG
  return {
    configDir,
    dataDir,
    runtimeDir,
    cacheDir,
    pluginDir: pick(undefined, 'FORM_PLUGIN_DIR', join(dataDir, 'plugins')),
    operatorConfig: explicit ? resolve(explicit) : join(configDir, 'operator.toml'),
    operatorConfigExplicit: Boolean(explicit),
    socket: join(runtimeDir, 'node.sock'),
    pidFile: join(runtimeDir, 'node.pid'),
    logFile: join(dataDir, 'logs', 'node.log'),
  }
}

/**
 * Takes the path flags out of raw argv. They are read before Clipanion parses the rest (plugins must
 * be found first), and kept out of every command's option list: that keeps the parser small.
 */
export function splitPathFlags(argv: string[]): { overrides: PathOverrides; rest: string[] } {
  const overrides: PathOverrides = {}
  const rest: string[] = []
  const names: Record<string, keyof PathOverrides> = {
    '--config-dir': 'configDir',
    '--data-dir': 'dataDir',
    '--runtime-dir': 'runtimeDir',
    '--config': 'config',
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') {
      rest.push(...argv.slice(i))
      break
    }
    const eq = arg.indexOf('=')
    const key = names[eq === -1 ? arg : arg.slice(0, eq)]
    if (!key) rest.push(arg)
    else overrides[key] = eq === -1 ? argv[++i] : arg.slice(eq + 1)
  }
  return { overrides, rest }
}
