import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { packCollections } from './lib/collections.js'
import { PackDryRunCommand } from './commands/dry-run.js'
import { PackInitCommand } from './commands/init.js'
import { PackValidateCommand } from './commands/validate.js'
import { PackBuildCommand } from './commands/build.js'
import { PackShipCommand } from './commands/ship.js'
import { PackCancelCommand, PackLogsCommand, PackStatusCommand } from './commands/status.js'
import { PackPruneCommand } from './commands/prune.js'

export interface PackConfig {
  /** 'auto': build when the node can (root, mmdebstrap, ...); 'off': never */
  builder: 'auto' | 'off'
  builder_concurrency: number
  /** the Debian suite of the base root filesystem */
  builder_suite: string
  /** apt sources for mmdebstrap (e.g. "http://deb.debian.org/debian"); empty: mmdebstrap's default */
  builder_mirrors: string[]
  /** the largest build context the node accepts (compressed) */
  max_context_mb: number
  /** the most a context may unpack to, and how many files it may hold */
  max_context_unpacked_mb: number
  max_context_files: number
  /** the builder's contexts, step cache and images beyond this are evicted, least recently used first */
  cache_max_gb: number
  /** IPv4 ranges a build VM may reach besides the public internet (private ranges and the node itself are refused) */
  build_allow_cidrs: string[]
  /** memory of a build VM (MiB) */
  build_vm_memory_mb: number
}

const positiveInt = t.cascade(t.isNumber(), t.isInteger(), t.isPositive())

export default definePlugin({
  name: 'pack',
  version: '0.1.0',
  apiVersion: API_VERSION,
  collections: packCollections,
  description: 'Formfiles and VM images',
  commands: [PackValidateCommand, PackDryRunCommand, PackInitCommand, PackBuildCommand, PackStatusCommand, PackLogsCommand, PackCancelCommand, PackShipCommand, PackPruneCommand],
  configuration: {
    schema: t.isObject({
      builder: t.isEnum(['auto', 'off'] as const),
      builder_concurrency: positiveInt,
      builder_suite: t.cascade(t.isString(), t.matchesRegExp(/^[a-z][a-z0-9-]*$/)),
      builder_mirrors: t.isArray(t.isString()),
      max_context_mb: positiveInt,
      max_context_unpacked_mb: positiveInt,
      max_context_files: positiveInt,
      cache_max_gb: t.cascade(t.isNumber(), t.isPositive()),
      build_allow_cidrs: t.isArray(t.isString()),
      build_vm_memory_mb: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(256, 65536)),
    }) as t.StrictValidator<unknown, PackConfig>,
    defaults: { builder: 'auto', builder_concurrency: 1, builder_suite: 'bookworm', builder_mirrors: [], max_context_mb: 512, max_context_unpacked_mb: 2048, max_context_files: 50_000, cache_max_gb: 20, build_allow_cidrs: [], build_vm_memory_mb: 1024 } satisfies PackConfig,
  },
  services: [{ name: 'builder', dependsOn: ['state', 'p2p'], start: async (ctx) => (await import('./service/builder.js')).startBuilder(ctx) }],
})

export { place, type NodeCandidate, type PlacementRequest, type PlacementResult } from './lib/scheduler.js'
export type { Formfile, Step } from './lib/formfile/index.js'
/** Reading a build's record (`form manage ssh` finds the image's user there). */
export const loadBuildRecords = () => import('./lib/follow.js')
/** Reading a Formfile as `form pack build` does (`form manage get-ip` computes its build id). */
export const loadFormfiles = () => import('./commands/shared.js')
