import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, kinds, s, type SettingsOf } from '../../core/settings.js'
import { packCollections } from './lib/collections.js'
import { PackDryRunCommand } from './commands/dry-run.js'
import { PackInitCommand } from './commands/init.js'
import { PackValidateCommand } from './commands/validate.js'
import { PackBuildCommand } from './commands/build.js'
import { PackShipCommand } from './commands/ship.js'
import { PackCancelCommand, PackLogsCommand, PackStatusCommand } from './commands/status.js'
import { PackPruneCommand } from './commands/prune.js'

export const packSettings = {
  builder: s.oneOf(['auto', 'off'] as const, 'auto', 'build images here when possible (root, mmdebstrap, e2fsprogs); "off": never'),
  builder_concurrency: s.int(1, 'builds at once'),
  builder_suite: s.string('bookworm', 'Debian suite of the base root filesystem', { check: t.cascade(t.isString(), t.matchesRegExp(/^[a-z][a-z0-9-]*$/)), type: 'Debian suite name' }),
  builder_mirrors: s.list(t.isString(), 'URLs', [], 'apt sources for mmdebstrap, e.g. ["http://deb.debian.org/debian"]; empty: its default'),
  max_context_mb: s.int(512, 'the largest build context accepted (compressed, as uploaded)'),
  max_context_unpacked_mb: s.int(2048, 'the most a context may unpack to (checked from its headers before it is kept)'),
  max_context_files: s.int(50_000, 'the most files a context may hold'),
  cache_max_gb: s.positive(20, 'contexts, step layers and images built here beyond this are evicted, least recently used first'),
  build_allow_cidrs: s.list(kinds.cidr[0], kinds.cidr[1], [], 'IPv4 ranges build VMs may reach besides the internet (private ranges, link-local, CGNAT and this node are refused), e.g. ["10.20.0.0/16"]'),
  build_vm_memory_mb: s.int(1024, 'memory of each build VM, MiB (every Formfile step runs in a throwaway VM)', { min: 256, max: 65536 }),
}

export type PackConfig = SettingsOf<typeof packSettings>

export default definePlugin({
  name: 'pack',
  version: '0.1.0',
  apiVersion: API_VERSION,
  collections: packCollections,
  description: 'Formfiles and VM images',
  commands: [PackValidateCommand, PackDryRunCommand, PackInitCommand, PackBuildCommand, PackStatusCommand, PackLogsCommand, PackCancelCommand, PackShipCommand, PackPruneCommand],
  configuration: defineSettings(packSettings),
  services: [{ name: 'builder', dependsOn: ['state', 'p2p'], start: async (ctx) => (await import('./service/builder.js')).startBuilder(ctx) }],
})

export type { Formfile, Step } from './lib/formfile/index.js'
/** Reading a build's record (`form manage ssh` finds the image's user there). */
export const loadBuildRecords = () => import('./lib/follow.js')
/** Reading a Formfile as `form pack build` does (`form manage get-ip` computes its build id). */
export const loadFormfiles = () => import('./commands/run/shared.js')
