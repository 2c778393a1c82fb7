import type { CommandClass } from 'clipanion'
import type { StrictValidator } from 'typanion'
import type { Logger } from './log.js'
import type { Paths } from './paths.js'
import type { ApiRouter } from './daemon/router.js'

/** The core API version plugins are written against. Bump on breaking changes to this file. */
export const API_VERSION = 1

/**
 * Where a service is: `degraded` while a part of it (a watch, a loop) does not work, `failed` when a
 * third-party service could not start and the node runs without it.
 */
export type ServiceState = 'starting' | 'running' | 'degraded' | 'failed' | 'stopped'

/** How a service's background work tells `form node status` that it stopped working, and that it recovered. */
export interface ServiceHealth {
  /** `part` (e.g. 'watch of instances') does not work, for `reason`: the service shows as degraded */
  degraded(part: string, reason: string): void
  /** `part` works again; the service is running once none of its parts is degraded */
  recovered(part: string): void
  /**
   * Runs `body`, a loop meant to last as long as the service: if it throws, or returns before the
   * node stops, `part` is degraded with the reason.
   */
  loop(part: string, body: () => Promise<void>): void
}

/**
 * The handle each service gives its dependents, by service name. Empty here: a plugin adds its
 * services' handles by declaration merging, beside its definition, so the core names no plugin:
 *
 *     declare module 'formation-cli/sdk' { interface ServiceHandles { count: CountHandle } }
 *
 * (built-ins merge into '../../core/plugin.js'). dependsOn takes only the names declared here, and
 * `ctx.use(name)` returns the declared type.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ServiceHandles {}

/** A service some plugin declared in ServiceHandles. */
export type ServiceName = keyof ServiceHandles & string

/** The handle of service `N`. */
export type HandleOf<N extends string> = N extends keyof ServiceHandles ? ServiceHandles[N] : unknown

/**
 * What `form node start` hands to a service: `Config` is its plugin's validated section (inferred by
 * definePlugin from `configuration`), `Deps` the services it lists in dependsOn. Contravariant in
 * `Deps` (`in`), so a start function that needs a service its definition does not list is a type error.
 */
export interface ServiceContext<Config = any, in Deps extends string = string> {
  /** resolved directories (config, data, runtime, cache, plugins) */
  paths: Paths
  /** this plugin's section of the operator config, validated and with defaults applied */
  config: Config
  /** where the operator config came from, or undefined when running on defaults */
  configFile?: string
  log: Logger
  /** register routes under /v1/<plugin>/... on the node API */
  api: ApiRouter
  /**
   * The handle of a started service this one lists in dependsOn (also checked at run time: another
   * name throws SERVICE_UNDECLARED_DEPENDENCY). A property, not a method, so that `in Deps` holds.
   */
  use: <N extends Deps>(service: N) => HandleOf<N>
  /** aborted when the node begins to stop, or when this service failed to start (what it began must end) */
  signal: AbortSignal
  /** this service's health, for its background loops to report */
  health: ServiceHealth
  /** node software version */
  version: string
  /** the state collections every loaded plugin declares (what the state service enforces) */
  collections: CollectionDeclaration[]
}

export interface RunningService<Handle = unknown> {
  /** what dependents get from ctx.use(name): what they need, not the service's internals */
  handle?: Handle
  stop?(): Promise<void> | void
  /** reported by /v1/node and `form node status` */
  info?(): Record<string, unknown>
  /** a name this node answers to in signed requests (its address in state, its peer id): see core/auth */
  audience?: string
}

/**
 * A node service. `start` should import its heavy modules dynamically so that CLI start-up stays fast.
 */
export interface ServiceDefinition<Config = any, Deps extends string = any> {
  name: string
  dependsOn?: readonly Deps[]
  start(ctx: ServiceContext<Config, Deps>): Promise<RunningService> | RunningService
}

export interface PluginConfiguration<T = unknown> {
  /** typanion schema of the plugin's section (the TOML table named after the plugin) */
  schema: StrictValidator<unknown, T>
  /** values used for keys the operator left out */
  defaults: T
}

/**
 * Who may write a key of a collection. Every kind requires the key's `{owner}` segment to equal the
 * author's address (checked on every replica from the operation alone). `member` and `admin`
 * records also count only while their author is an admitted member / a genesis admin: they are
 * stored like any valid operation, and readers ignore them otherwise (see plugins/state/README.md).
 */
export type CollectionWriter = 'owner' | 'member' | 'admin'

export interface CollectionRule {
  /** '/'-separated key pattern: `*` any segment, `{owner}` the author's address, anything else literal */
  pattern: string
  writer: CollectionWriter
  description: string
  /** typanion schema of the value; a value that fails it is rejected (OP_MALFORMED) on every replica */
  schema: StrictValidator<unknown, unknown>
}

/** A state collection a plugin owns: its name and the rules of its keys. */
export interface CollectionDeclaration {
  name: string
  description: string
  rules: CollectionRule[]
}

export interface FormPlugin<Config = any> {
  name: string
  version: string
  /**
   * The plugin API versions it works with: a number (that version), or a range of whole versions as
   * npm writes them: '^1', '1.x', '>=1', '>=1 <3', '1 || 2' (see templates/plugin/README.md).
   */
  apiVersion: number | string
  description?: string
  commands?: CommandClass<any>[]
  services?: readonly ServiceDefinition<Config>[]
  configuration?: PluginConfiguration<Config>
  /** state collections this plugin owns (names are global: two plugins may not declare one) */
  collections?: CollectionDeclaration[]
}

/** Each service of a plugin, its `Deps` inferred from its own dependsOn. */
type Services<Config, Deps extends readonly ServiceName[]> = { [I in keyof Deps]: ServiceDefinition<Config, Deps[I]> }

/**
 * A plugin. The type of `ctx.config` in its services is inferred from `configuration`; each
 * service's dependsOn must name declared services (ServiceHandles), and `ctx.use` takes only those.
 */
export function definePlugin<Config = any, const Deps extends readonly ServiceName[] = []>(plugin: Omit<FormPlugin<Config>, 'services'> & { services?: Services<Config, Deps> }): FormPlugin<Config> {
  return plugin as FormPlugin<Config>
}
