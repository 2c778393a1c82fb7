import { existsSync, statfsSync } from 'node:fs'
import { availableParallelism, totalmem } from 'node:os'
import { dirname } from 'node:path'
import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, kinds, s, type SettingsOf } from '../../core/settings.js'
import { NodeAdmitCommand, NodeRevokeCommand } from './commands/admit.js'
import { NodeLogsCommand } from './commands/logs.js'
import { NodeStartCommand } from './commands/start.js'
import { NodeStatusCommand } from './commands/status.js'
import { NodeStopCommand } from './commands/stop.js'

const nonEmpty = t.cascade(t.isString(), t.hasMinLength(1))

export const nodeSettings = {
  data_dir: s.optionalString("the node's data directory: state, keys, images, logs (a flag or FORM_DATA_DIR wins)", { example: '/var/lib/form' }),
  hypervisor: s.oneOf(['auto', 'qemu', 'cloud-hypervisor'] as const, 'auto', 'the hypervisor: auto uses Cloud Hypervisor when it and KVM are usable, else QEMU'),
  api_listen: s.list(t.cascade(t.isString(), t.matchesRegExp(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/)), 'host:port', [], 'host:port for remote callers (developers\' form manage join), e.g. ["0.0.0.0:3004"]'),
  // instances reach the internet by default (the seed's promise); [node] nat = false turns it off
  nat: s.bool(true, 'instances reach the internet through this node (iptables masquerade); the bridge is [net] bridge_name. Always, NAT or not: instances reach this node only for DNS and ICMP, and no private range (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16) but formnet and their own subnet'),
  instance_allow_cidrs: s.list(kinds.cidr[0], kinds.cidr[1], [], 'ranges instances may reach anyway, e.g. ["192.168.1.0/24"] for a LAN service'),
  qemu: s.string('qemu-system-x86_64', 'QEMU binary (KVM when usable, else TCG emulation)', { check: nonEmpty }),
  cloud_hypervisor: s.string('cloud-hypervisor', 'used by hypervisor = "auto" when it and KVM are usable', { check: nonEmpty }),
  shutdown_timeout_s: s.int(15, 'ACPI power-off grace before a VM is stopped hard'),
  boot_timeout_s: s.int(600, 'a guest must print FORM-READY on its console within this'),
  // the defaults here serve only where the host is not measured (`form node start` measures it: offeredResources)
  resources: s.table(
    "what this node offers to instances; a key left out is measured on the host when the node starts: its CPUs, its memory and the free disk of the data directory's filesystem, each minus [node.reserve] (the node's log says what it offers; `form state list nodes` too)",
    {
      vcpus: s.int(2, 'vCPUs offered', { example: 2 }),
      memory_mb: s.int(4096, 'memory offered, MiB', { example: 4096 }),
      disk_gb: s.int(50, 'disk offered, GB', { example: 50 }),
    },
  ),
  // vCPUs are time-shared (a busy host slows, nothing fails), so none is kept back by default
  reserve: s.table('kept back from the measured resources for the host and the node', {
    vcpus: s.int(0, 'vCPUs are time-shared: a busy host slows down, nothing fails', { min: 0 }),
    memory_mb: s.int(1024, 'memory kept back, MiB', { min: 0 }),
    disk_gb: s.int(10, 'disk kept back, GB', { min: 0 }),
  }),
}

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
