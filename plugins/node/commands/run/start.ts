import { createClient } from '../../../../core/client.js'
import { loadOperatorConfig, resolveSections } from '../../../../core/config.js'
import { startNode } from '../../../../core/daemon/host.js'
import { runningNodePid } from '../../../../core/daemon/socket.js'
import { runDetached } from '../../../../core/detach.js'
import { FormError } from '../../../../core/errors.js'
import { createLogger } from '../../../../core/log.js'
import { resolvePaths } from '../../../../core/paths.js'
import { checkOverride, type Setting } from '../../../../core/settings.js'
import { netSettings } from '../../../net/index.js'
import { stateSettings } from '../../../state/index.js'
import { offeredResources } from '../../index.js'
import { OVERRIDES, type NodeStartCommand } from '../start.js'

const DETACHED_ENV = 'FORM_NODE_DETACHED'

export async function nodeStart(cmd: NodeStartCommand) {
  // checked before anything starts, and before --detach forks: a bad flag is an error here, not a
  // child's exit reported through its log
  const listen = override(OVERRIDES.listen, cmd.listen)
  const bootstrap = override(OVERRIDES.bootstrap, cmd.bootstrap)
  const formnet = fromEnv('FORM_FORMNET', netSettings.formnet, (text) => text)
  const admins = fromEnv('FORM_ADMINS', stateSettings.admins)
  const apiListenFlag = override(OVERRIDES.apiListen, cmd.apiListen)
  if (cmd.detach) return startDetached(cmd)

  const { file, raw } = await loadOperatorConfig(cmd.dirs.operatorConfig, cmd.dirs.operatorConfigExplicit)
  const plugins = cmd.context.plugins.map((p) => p.plugin)
  // logged once the log exists: the table of a removed plugin must not stop the node
  const configWarnings: FormError[] = []
  const sections = resolveSections(file, raw, plugins, (problem) => configWarnings.push(problem))
  if (sections.net) sections.net = { ...sections.net, ...defined({ listen, bootstrap, formnet }) }
  if (sections.state && admins) sections.state = { ...sections.state, admins }
  const apiListen = apiListenFlag ?? sections.node?.api_listen
  let paths = cmd.dirs
  const overrides = cmd.context.overrides ?? {}
  if (sections.node?.data_dir && !overrides.dataDir && !process.env.FORM_DATA_DIR) {
    paths = resolvePaths({ ...overrides, dataDir: sections.node.data_dir })
  }
  let measured: string[] = []
  if (sections.node) {
    // [node.resources] keys the operator left out are measured on this host (minus [node.reserve])
    const { measured: keys, ...offered } = offeredResources(raw.node, sections.node.reserve, paths.dataDir)
    sections.node = { ...sections.node, resources: offered }
    measured = keys
  }
  const detached = process.env[DETACHED_ENV] === '1'
  const log = createLogger({ file: paths.logFile, stderr: !detached, level: cmd.verbose ? 'debug' : 'info' })
  log.info(`form ${cmd.context.version} starting`, { pid: process.pid, dataDir: paths.dataDir, config: file ?? 'built-in defaults' })
  for (const w of configWarnings) log.warn(`${w.message}: ignored`, { hint: w.hint })
  if (sections.node) log.info('resources offered', { ...sections.node.resources, measured: measured.join(',') || 'none: all from [node.resources]' })

  const thirdParty = cmd.context.plugins.filter((p) => !p.builtin).map((p) => p.plugin.name)
  const node = await startNode({ plugins, paths, sections, configFile: file, log, version: cmd.context.version, apiListen, thirdParty })
  if (!detached) cmd.context.stderr.write(`node running (pid ${process.pid}); API on ${paths.socket}; Ctrl-C to stop\n`)

  return new Promise<number>((resolve) => {
    let signals = 0
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) {
        log.warn(`second ${signal}: exiting without a clean stop`)
        process.exit(130)
      }
      log.info(`received ${signal}`)
      node.stop().then(
        () => resolve(0),
        (error: Error) => {
          log.error('stop failed', { error: error.message })
          resolve(1)
        },
      )
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

const list = (text: string) => text.split(',').map((s) => s.trim()).filter(Boolean)

/** An environment variable that overrides a setting, checked by that setting's validator; undefined when unset. */
function fromEnv<T>(env: string, setting: Setting<T>, parse: (text: string) => unknown = list): T | undefined {
  const text = process.env[env]
  return text ? checkOverride(env, setting, parse(text)) : undefined
}

/** A flag, else its variable: the value the node uses instead of its setting, refused as the config would refuse it. */
function override<T>(o: { flag: string; env: string; setting: Setting<T> }, given: string[] | undefined): T | undefined {
  return given === undefined ? fromEnv(o.env, o.setting) : checkOverride(o.flag, o.setting, given)
}

const defined = <T extends object>(values: T) => Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>

/** Re-runs this command in the background, and waits until the node answers. */
async function startDetached(cmd: NodeStartCommand): Promise<number> {
  const paths = cmd.dirs
  const already = await runningNodePid(paths.pidFile)
  if (already) {
    throw new FormError('NODE_ALREADY_RUNNING', `a node is already running (pid ${already}, socket ${paths.socket})`, {
      hint: 'stop it with `form node stop`, or give this node its own --runtime-dir and --data-dir',
    })
  }
  const client = createClient({ socket: paths.socket, timeoutMs: 2000 })
  const pid = await runDetached({
    what: 'the node',
    logFile: paths.logFile,
    envFlag: DETACHED_ENV,
    isReady: async (pid) => (await client.get<{ pid: number }>('/v1/health')).pid === pid,
    timeoutMs: Number(process.env.FORM_NODE_READY_TIMEOUT_MS ?? 60_000),
  })
  cmd.print({ pid, socket: paths.socket, logFile: paths.logFile }, `node started in the background (pid ${pid})\nAPI: ${paths.socket}\nlog: ${paths.logFile}`)
  return 0
}
