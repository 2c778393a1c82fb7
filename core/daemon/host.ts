import { FormError } from '../errors.js'
import type { Logger } from '../log.js'
import type { Paths } from '../paths.js'
import type { FormPlugin, HandleOf, RunningService, ServiceContext } from '../plugin.js'
import { ServiceStatus } from './health.js'
import { ApiServer, type Authenticator } from './server.js'
import { RouteTable, type Route } from './router.js'
import { orderServices, type PlannedService } from './services.js'
import { acquirePidFile } from './socket.js'

export interface NodeOptions {
  plugins: FormPlugin[]
  paths: Paths
  /** validated config sections by plugin name */
  sections: Record<string, any>
  configFile?: string
  log: Logger
  version: string
  authenticate?: Authenticator
  /** host:port addresses where remote callers reach the API (open and signed routes only) */
  apiListen?: string[]
  /** plugins whose services may fail to start without stopping the node (third-party ones) */
  thirdParty?: string[]
}

interface Reported {
  planned: PlannedService
  status: ServiceStatus
  startedInMs: number
  /** undefined for a third-party service that failed to start */
  running?: RunningService
}

interface Started extends Reported {
  running: RunningService
}

export interface RunningNode {
  stop(): Promise<void>
  /** what /v1/node reports */
  describe(): Record<string, unknown>
}

/**
 * Starts every service in dependency order and serves the API. If a built-in service fails to start,
 * the ones already started are stopped in reverse order and the cause is thrown; nothing is left
 * behind. A third-party service that fails (and what depends on it) is reported failed and skipped:
 * someone else's plugin must not take the node down.
 */
export async function startNode(options: NodeOptions): Promise<RunningNode> {
  const { paths, log } = options
  const plan = orderServices(options.plugins)
  const releaseLock = await acquirePidFile(paths.pidFile, paths.socket)
  const routes = new RouteTable()
  const abort = new AbortController()
  const started: Started[] = []
  /** in start order, with the third-party services that failed */
  const reported: Reported[] = []
  const thirdParty = new Set(options.thirdParty ?? [])
  const startedAt = Date.now()
  const handles = new Map<string, unknown>()
  const apiAddresses: string[] = []

  const stopStarted = async () => {
    // before the abort: the loops it ends are not failures
    for (const s of started) s.status.stopping()
    abort.abort()
    for (const s of [...started].reverse()) {
      const name = s.planned.definition.name
      try {
        await s.running.stop?.()
        log.info(`service ${name} stopped`)
      } catch (error) {
        log.error(`service ${name} failed to stop`, { error: (error as Error).message })
      }
      s.status.stopped()
    }
    started.length = 0
  }

  // The names this node answers to in signed requests: what its services declare (its address in
  // state, its peer id), else an id of this run; the first is the one clients are told to sign for.
  const audiences: string[] = []
  const { randomBytes } = await import('node:crypto')
  const fallbackAudience = `node-${randomBytes(12).toString('hex')}`
  const audienceList = () => (audiences.length ? audiences : [fallbackAudience])
  const { createRequestVerifier } = await import('../auth/verify.js')
  const server = new ApiServer({ routes, log: log.child('api'), authenticate: options.authenticate ?? createRequestVerifier({ audiences: audienceList }).verify })
  try {
    for (const planned of plan) {
      const { definition, plugin } = planned
      const allowed = new Set(definition.dependsOn ?? [])
      const serviceLog = log.child(definition.name)
      const status = new ServiceStatus(serviceLog)
      const own = { routes: [] as Route[], abort: new AbortController() }
      const t0 = performance.now()
      const fail = (error: unknown) => {
        const reason = (error as Error)?.message ?? String(error)
        if (!thirdParty.has(plugin)) {
          throw new FormError('SERVICE_START', `service "${definition.name}" (plugin "${plugin}") failed to start: ${reason}`, {
            cause: error,
            hint: (error as FormError).hint ?? 'see the node log for details (`form node logs`)',
          })
        }
        own.abort.abort()
        routes.remove(own.routes)
        status.failed(reason)
        reported.push({ planned, status, startedInMs: performance.now() - t0 })
        log.error(`service ${definition.name} (plugin ${plugin}) failed to start; the node runs without it`, { error: reason })
      }
      const failedDependency = reported.find((r) => !r.running && allowed.has(r.planned.definition.name))
      if (failedDependency) {
        fail(new Error(`it depends on "${failedDependency.planned.definition.name}", which failed to start`))
        continue
      }
      const ctx: ServiceContext = {
        paths,
        config: options.sections[plugin] ?? {},
        configFile: options.configFile,
        log: serviceLog,
        api: routes.scoped(plugin, `/v1/${plugin}`, (r) => own.routes.push(r)),
        // the types check this too, but a plugin in JavaScript is checked only here
        use: <N extends string>(name: N) => {
          if (!allowed.has(name)) {
            throw new FormError('SERVICE_UNDECLARED_DEPENDENCY', `service "${definition.name}" used "${name}" without listing it in dependsOn`, {
              hint: `add "${name}" to the dependsOn of service "${definition.name}" (plugin "${plugin}")`,
            })
          }
          return handles.get(name) as HandleOf<N>
        },
        signal: AbortSignal.any([abort.signal, own.abort.signal]),
        health: status,
        version: options.version,
        collections: options.plugins.flatMap((p) => p.collections ?? []),
      }
      let running: RunningService
      try {
        running = (await definition.start(ctx)) ?? {}
      } catch (error) {
        fail(error)
        continue
      }
      status.running()
      const entry = { planned, running, status, startedInMs: performance.now() - t0 }
      started.push(entry)
      reported.push(entry)
      handles.set(definition.name, running.handle)
      if (running.audience) audiences.push(running.audience)
      log.info(`service ${definition.name} started`, { ms: Math.round(performance.now() - t0) })
    }

    const describe = () => ({
      version: options.version,
      pid: process.pid,
      startedAt: new Date(startedAt).toISOString(),
      uptimeMs: Date.now() - startedAt,
      socket: paths.socket,
      api: apiAddresses,
      dataDir: paths.dataDir,
      configFile: options.configFile ?? null,
      plugins: options.plugins.map((p) => ({ name: p.name, version: p.version })),
      services: reported.map((s) => ({
        name: s.planned.definition.name,
        plugin: s.planned.plugin,
        dependsOn: s.planned.definition.dependsOn ?? [],
        ...s.status.view(),
        startedInMs: Math.round(s.startedInMs),
        info: s.running?.info?.() ?? {},
      })),
    })
    // Over TCP a stranger may ask: no pid, no local path, no service internals (a reason may name them).
    const describeRemote = () => {
      const { version, startedAt, uptimeMs, api, plugins, services } = describe()
      return { version, startedAt, uptimeMs, api, plugins, services: services.map(({ info: _info, reason: _reason, ...s }) => s) }
    }
    const core = routes.scoped('core', '/v1')
    core.get('/health', (req) => (req.local ? { ok: true, pid: process.pid } : { ok: true }))
    core.get('/node', (req) => (req.local ? describe() : describeRemote()))
    // What a client signs for: a request naming another node is refused here (core/auth).
    core.get('/auth/audience', () => ({ audience: audienceList()[0], accepts: audienceList() }))
    // Lets a client check that its signature is accepted and see the address the node derives.
    core.post('/auth/whoami', (req) => ({ address: req.caller }), { auth: 'signed' })
    await server.listen(paths.socket)
    for (const address of options.apiListen ?? []) apiAddresses.push(await server.listenTcp(address))
    const failed = reported.filter((s) => !s.running).map((s) => s.planned.definition.name)
    log.info('node ready', { socket: paths.socket, api: apiAddresses, services: started.map((s) => s.planned.definition.name), ...(failed.length ? { failed } : {}) })

    let stopping: Promise<void> | undefined
    return {
      describe,
      stop: () =>
        (stopping ??= (async () => {
          log.info('node stopping')
          await server.close()
          await stopStarted()
          await releaseLock()
          log.info('node stopped')
        })()),
    }
  } catch (error) {
    log.error('node failed to start', { error: (error as Error).message })
    await stopStarted()
    if (server.server.listening) await server.close()
    await releaseLock()
    throw error
  }
}
