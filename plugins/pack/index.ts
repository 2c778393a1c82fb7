import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { PackDryRunCommand } from './commands/dry-run.js'
import { PackInitCommand } from './commands/init.js'
import { PackValidateCommand } from './commands/validate.js'
import { PackBuildCommand } from './commands/build.js'
import { PackShipCommand } from './commands/ship.js'
import { PackCancelCommand, PackLogsCommand, PackStatusCommand } from './commands/status.js'

export interface PackConfig {
  /** 'auto': build when the node can (root, mmdebstrap, ...); 'off': never */
  builder: 'auto' | 'off'
  builder_concurrency: number
  /** the Debian suite of the base root filesystem */
  builder_suite: string
  /** apt sources for mmdebstrap (e.g. "http://deb.debian.org/debian"); empty: mmdebstrap's default */
  builder_mirrors: string[]
  /** the largest build context the node accepts */
  max_context_mb: number
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
  description: 'Formfiles and VM images',
  commands: [PackValidateCommand, PackDryRunCommand, PackInitCommand, PackBuildCommand, PackStatusCommand, PackLogsCommand, PackCancelCommand, PackShipCommand],
  configuration: {
    schema: t.isObject({
      builder: t.isEnum(['auto', 'off'] as const),
      builder_concurrency: positiveInt,
      builder_suite: t.cascade(t.isString(), t.matchesRegExp(/^[a-z][a-z0-9-]*$/)),
      builder_mirrors: t.isArray(t.isString()),
      max_context_mb: positiveInt,
      build_allow_cidrs: t.isArray(t.isString()),
      build_vm_memory_mb: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(256, 65536)),
    }) as t.StrictValidator<unknown, PackConfig>,
    defaults: { builder: 'auto', builder_concurrency: 1, builder_suite: 'bookworm', builder_mirrors: [], max_context_mb: 512, build_allow_cidrs: [], build_vm_memory_mb: 1024 } satisfies PackConfig,
  },
  services: [{ name: 'builder', dependsOn: ['state', 'p2p'], start: async (ctx) => (await import('./service/builder.js')).startBuilder(ctx) }],
})

export { place, type NodeCandidate, type PlacementRequest, type PlacementResult } from './lib/scheduler.js'
export type { Formfile, Step } from './lib/formfile/index.js'
