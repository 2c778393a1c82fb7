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
}

const positiveInt = t.cascade(t.isNumber(), t.isInteger(), t.isPositive())

export const nodeConfiguration = {
  schema: t.isObject({
    data_dir: t.isOptional(t.isString()),
    hypervisor: t.isEnum(['auto', 'qemu', 'cloud-hypervisor'] as const),
    resources: t.isObject({ vcpus: positiveInt, memory_mb: positiveInt, disk_gb: positiveInt }),
    api_listen: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/))),
  }) as t.StrictValidator<unknown, NodeConfig>,
  defaults: {
    hypervisor: 'auto',
    resources: { vcpus: 2, memory_mb: 4096, disk_gb: 50 },
    api_listen: [],
  } satisfies NodeConfig,
}

export default definePlugin({
  name: 'node',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'the node daemon and, on the node, the hypervisor manager',
  commands: [NodeStartCommand, NodeStopCommand, NodeStatusCommand, NodeLogsCommand],
  configuration: nodeConfiguration,
})
