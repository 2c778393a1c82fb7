import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { NodeLogsCommand } from './commands/logs.js'
import { NodeStartCommand } from './commands/start.js'
import { NodeStatusCommand } from './commands/status.js'
import { NodeStopCommand } from './commands/stop.js'

export interface NodeConfig {
  /** overrides the default data directory when neither --data-dir nor FORM_DATA_DIR is given */
  data_dir?: string
  hypervisor: 'auto' | 'qemu' | 'cloud-hypervisor'
  resources: { vcpus: number; memory_mb: number; disk_gb: number }
  /** host:port addresses where developers and other nodes reach the node API over the network */
  api_listen: string[]
  /** masquerade the instances' traffic leaving the node's subnet (iptables) */
  nat: boolean
  /** the QEMU and Cloud Hypervisor binaries (names on PATH or absolute paths) */
  qemu: string
  cloud_hypervisor: string
  /** how long a guest gets to power off after the ACPI button before its VM is stopped hard */
  shutdown_timeout_s: number
  /** how long a guest may take to print FORM-READY on its console before the boot counts as failed */
  boot_timeout_s: number
}

const positiveInt = t.cascade(t.isNumber(), t.isInteger(), t.isPositive())

export const nodeConfiguration = {
  schema: t.isObject({
    data_dir: t.isOptional(t.isString()),
    hypervisor: t.isEnum(['auto', 'qemu', 'cloud-hypervisor'] as const),
    resources: t.isObject({ vcpus: positiveInt, memory_mb: positiveInt, disk_gb: positiveInt }),
    api_listen: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/))),
    nat: t.isBoolean(),
    qemu: t.cascade(t.isString(), t.hasMinLength(1)),
    cloud_hypervisor: t.cascade(t.isString(), t.hasMinLength(1)),
    shutdown_timeout_s: positiveInt,
    boot_timeout_s: positiveInt,
  }) as t.StrictValidator<unknown, NodeConfig>,
  defaults: {
    hypervisor: 'auto',
    resources: { vcpus: 2, memory_mb: 4096, disk_gb: 50 },
    api_listen: [],
    nat: false,
    qemu: 'qemu-system-x86_64',
    cloud_hypervisor: 'cloud-hypervisor',
    shutdown_timeout_s: 15,
    boot_timeout_s: 600,
  } satisfies NodeConfig,
}

export default definePlugin({
  name: 'node',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'the node daemon and, on the node, the hypervisor manager',
  commands: [NodeStartCommand, NodeStopCommand, NodeStatusCommand, NodeLogsCommand],
  configuration: nodeConfiguration,
  services: [{ name: 'vmm', dependsOn: ['state', 'p2p'], start: async (ctx) => (await import('./service/vmm.js')).startVmm(ctx) }],
})

/** The instance records in state, shared with the developer commands (light: Node built-ins only). */
export { desiredKey, observedKey, parseDesired, parseInstanceKey, DEFAULT_FAILOVER_MS, MAX_CANDIDATES } from './lib/vmm/records.js'
export { desiredEntries, heartbeats, hostsOf, type DesiredEntry } from './lib/vmm/hosts.js'
export type { DesiredInstance, DesiredState, ObservedInstance, ObservedState } from './lib/vmm/records.js'
export { IMAGE_SCHEMA, parseManifest, type ImageManifest } from './lib/vmm/image.js'
// for the image builder's throwaway build VMs (plugins/pack/lib/builder/vm.ts)
export { bootableKernel, kvmStatus } from './lib/hypervisor/index.js'
export { QmpClient } from './lib/hypervisor/qmp.js'
