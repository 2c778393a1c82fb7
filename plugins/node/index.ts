import { existsSync, statfsSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'
import { dirname } from 'node:path'
import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { nodeCollections } from './lib/collections.js'
import { NodeAdmitCommand, NodeRevokeCommand } from './commands/admit.js'
import { NodeLogsCommand } from './commands/logs.js'
import { NodeStartCommand } from './commands/start.js'
import { NodeStatusCommand } from './commands/status.js'
import { NodeStopCommand } from './commands/stop.js'

export interface NodeConfig {
  /** overrides the default data directory when neither --data-dir nor FORM_DATA_DIR is given */
  data_dir?: string
  hypervisor: 'auto' | 'qemu' | 'cloud-hypervisor'
  /** what the node offers; a key left out is measured on the host (see offeredResources) */
  resources: { vcpus: number; memory_mb: number; disk_gb: number }
  /** what measured resources keep back for the host and the node itself */
  reserve: { vcpus: number; memory_mb: number; disk_gb: number }
  /** host:port addresses where developers and other nodes reach the node API over the network */
  api_listen: string[]
  /** masquerade the instances' traffic leaving the node's subnet (iptables) */
  nat: boolean
  /** private ranges (and this node's own ports) instances may reach anyway; everything private is closed to them by default */
  instance_allow_cidrs: string[]
  /** the QEMU and Cloud Hypervisor binaries (names on PATH or absolute paths) */
  qemu: string
  cloud_hypervisor: string
  /** how long a guest gets to power off after the ACPI button before its VM is stopped hard */
  shutdown_timeout_s: number
  /** how long a guest may take to print FORM-READY on its console before the boot counts as failed */
  boot_timeout_s: number
}

const positiveInt = t.cascade(t.isNumber(), t.isInteger(), t.isPositive())
const wholeNumber = t.cascade(t.isNumber(), t.isInteger(), t.isAtLeast(0))

export const nodeConfiguration = {
  schema: t.isObject({
    data_dir: t.isOptional(t.isString()),
    hypervisor: t.isEnum(['auto', 'qemu', 'cloud-hypervisor'] as const),
    resources: t.isObject({ vcpus: positiveInt, memory_mb: positiveInt, disk_gb: positiveInt }),
    reserve: t.isObject({ vcpus: wholeNumber, memory_mb: wholeNumber, disk_gb: wholeNumber }),
    api_listen: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/))),
    nat: t.isBoolean(),
    instance_allow_cidrs: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/))),
    qemu: t.cascade(t.isString(), t.hasMinLength(1)),
    cloud_hypervisor: t.cascade(t.isString(), t.hasMinLength(1)),
    shutdown_timeout_s: positiveInt,
    boot_timeout_s: positiveInt,
  }) as t.StrictValidator<unknown, NodeConfig>,
  defaults: {
    hypervisor: 'auto',
    // only where the host is not measured (`form node start` measures it: offeredResources)
    resources: { vcpus: 2, memory_mb: 4096, disk_gb: 50 },
    // vCPUs are time-shared (a busy host slows, nothing fails), so none is kept back by default
    reserve: { vcpus: 0, memory_mb: 1024, disk_gb: 10 },
    api_listen: [],
    // instances reach the internet by default (the seed's promise); [node] nat = false turns it off
    nat: true,
    instance_allow_cidrs: [],
    qemu: 'qemu-system-x86_64',
    cloud_hypervisor: 'cloud-hypervisor',
    shutdown_timeout_s: 15,
    boot_timeout_s: 600,
  } satisfies NodeConfig,
}

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
  collections: nodeCollections,
  description: 'the node daemon and, on the node, the hypervisor manager',
  commands: [NodeStartCommand, NodeStopCommand, NodeStatusCommand, NodeLogsCommand, NodeAdmitCommand, NodeRevokeCommand],
  configuration: nodeConfiguration,
  services: [{ name: 'vmm', dependsOn: ['state', 'p2p', 'formnet'], start: async (ctx) => (await import('./service/vmm.js')).startVmm(ctx) }],
})

/** The instance records in state, shared with the developer commands (light: Node built-ins only). */
export { desiredKey, observedKey, parseDesired, parseInstanceKey, DEFAULT_FAILOVER_MS, MAX_CANDIDATES } from './lib/vmm/records.js'
export { desiredEntries, hasQuorum, hostsOf, livenessFrom, rendezvous, roomsOf, shortOf, usageOn, type DesiredEntry, type HostsOptions, type Liveness } from './lib/vmm/hosts.js'
export type { DesiredInstance, DesiredState, ObservedInstance, ObservedState, StopReport } from './lib/vmm/records.js'
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
  type HealthReport,
  type HealthState,
} from './lib/vmm/health.js'
// for the image builder's throwaway build VMs (plugins/pack/lib/builder/vm.ts)
export { bootableKernel, kvmStatus } from './lib/hypervisor/index.js'
export { QmpClient } from './lib/hypervisor/qmp.js'
