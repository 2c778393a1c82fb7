import { existsSync, statfsSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'
import { dirname } from 'node:path'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, type SettingsOf } from '../../core/settings.js'
import { nodeSettings } from './lib/settings.js'
import { NodeAdmitCommand, NodeRevokeCommand } from './commands/admit.js'
import { NodeLogsCommand } from './commands/logs.js'
import { NodeStartCommand } from './commands/start.js'
import { NodeStatusCommand } from './commands/status.js'
import { NodeStopCommand } from './commands/stop.js'

export { nodeSettings } from './lib/settings.js'

export const nodeConfiguration = defineSettings(nodeSettings)
export type NodeConfig = SettingsOf<typeof nodeSettings>

/**
 * The host's CPUs, memory and the free space of the data directory's filesystem, each minus the
 * reserve (at least 1 of each is offered).
 */
export function hostResources(dataDir: string, reserve: NodeConfig['reserve'] = nodeConfiguration.defaults.reserve): NodeConfig['resources'] {
  let dir = dataDir
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir) // not created yet: its filesystem-to-be
  const fs = statfsSync(dir)
  const freeGb = Math.floor((fs.bavail * fs.bsize) / 1e9)
  return {
    vcpus: Math.max(1, availableParallelism() - reserve.vcpus),
    memory_mb: Math.max(1, Math.floor(totalmem() / 2 ** 20) - reserve.memory_mb),
    disk_gb: Math.max(1, freeGb - reserve.disk_gb),
  }
}

/**
 * What the node offers: each key of `[node.resources]` the operator wrote, else the host's measure
 * minus `[node.reserve]`. `configured` is the raw `[node]` table of the operator config.
 */
export function offeredResources(configured: unknown, reserve: NodeConfig['reserve'], dataDir: string): NodeConfig['resources'] & { measured: string[] } {
  const given = ((configured as { resources?: Partial<NodeConfig['resources']> } | undefined)?.resources ?? {}) as Partial<NodeConfig['resources']>
  const keys = ['vcpus', 'memory_mb', 'disk_gb'] as const
  const missing = keys.filter((k) => given[k] === undefined)
  const host = missing.length ? hostResources(dataDir, reserve) : undefined
  const out = { measured: missing as string[] } as NodeConfig['resources'] & { measured: string[] }
  for (const k of keys) out[k] = given[k] ?? host![k]
  return out
}

export default definePlugin({
  name: 'node',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'the node daemon and, on the node, the hypervisor manager',
  commands: [NodeStartCommand, NodeStopCommand, NodeStatusCommand, NodeLogsCommand, NodeAdmitCommand, NodeRevokeCommand],
  configuration: nodeConfiguration,
  services: [{ name: 'vmm', dependsOn: ['state', 'p2p', 'formnet', 'dns'], start: async (ctx) => (await import('./service/vmm.js')).startVmm(ctx) }],
})

export { IMAGE_SCHEMA, parseManifest, type ImageManifest } from './lib/vmm/image.js'
export {
  defaultHealthChecks,
  describeCheck,
  formatDuration as formatHealthDuration,
  parseDuration as parseHealthDuration,
  HEALTH_DEFAULTS,
  HEALTH_LIMITS,
  HEALTH_PATH,
  MAX_HEALTH_CHECKS,
  MAX_HEALTH_PATH,
  type HealthCheck,
} from './lib/vmm/health.js'
// for the image builder's throwaway build VMs (plugins/pack/lib/builder/vm.ts)
export { bootableKernel, kvmStatus } from './lib/hypervisor/index.js'
export { QmpClient } from './lib/hypervisor/qmp.js'
