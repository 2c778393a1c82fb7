import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { isFormError } from '../../../core/errors.js'
import { formatBytes, formatDuration, table } from '../../../core/output.js'

interface NodeDescription {
  version: string
  pid: number
  uptimeMs: number
  socket: string
  dataDir: string
  configFile: string | null
  services: { name: string; plugin: string; state: string; reason?: string; startedInMs: number; info: Record<string, unknown> }[]
}

export class NodeStatusCommand extends FormCommand {
  static override paths = [['node', 'status']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Show whether the node runs, its services and their state',
    details:
      'A service is `running`, `degraded` while a part of it (a watch, a background loop) does not work, `failed` when a third-party plugin\'s service could not start and the node runs without it, or `stopped`; the reasons are listed under the table (`reason` in --json). Exits 0 when the node runs and 3 when it does not, like `systemctl status`.',
    examples: [
      ['Show the local node', '$0 node status'],
      ['As JSON', '$0 node status --json'],
    ],
  })

  async run() {
    const client = await this.client()
    let node: NodeDescription
    try {
      node = await client.get<NodeDescription>('/v1/node')
    } catch (error) {
      if (isFormError(error) && error.code === 'NODE_NOT_RUNNING') {
        this.print({ running: false, socket: this.dirs.socket }, `${this.color('yellow', 'not running')} (no node answers on ${this.dirs.socket})\nstart one with \`form node start\``)
        return 3
      }
      throw error
    }
    this.print({ running: true, ...node }, () => {
      const head = [
        `${this.color('green', 'running')}  pid ${node.pid}, up ${formatDuration(node.uptimeMs)}, form ${node.version}`,
        `socket:  ${node.socket}`,
        `data:    ${node.dataDir}`,
        `config:  ${node.configFile ?? 'built-in defaults'}`,
        ...stateLines(node),
        '',
      ].join('\n')
      const rows = node.services.map((s) => [s.name, s.plugin, s.state, formatDuration(s.startedInMs), summarize(s.info)])
      // reasons are sentences: under the table, where they need not fit a column
      const problems = node.services.filter((s) => s.reason).map((s) => `${s.name}: ${this.color(s.state === 'failed' ? 'red' : 'yellow', s.state)}: ${s.reason}\n`)
      return head + '\n' + (rows.length ? table(rows, ['SERVICE', 'PLUGIN', 'STATE', 'START', 'INFO']) : 'no services\n') + (problems.length ? '\n' + problems.join('') : '') + cacheSection(node)
    })
  }
}

function summarize(info: Record<string, unknown>): string {
  return Object.entries(info)
    .filter(([, v]) => v === null || (typeof v !== 'object' && String(v).length <= 60))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
}

interface CacheInfo {
  bytes: number
  items: number
  maxBytes: number
  kinds: Record<string, { bytes: number; items: number }>
}

/** What the builder's cache holds (see `form pack prune`), when the node has a builder. */
function cacheSection(node: NodeDescription): string {
  const cache = node.services.find((s) => s.name === 'builder')?.info.cache as CacheInfo | undefined
  if (!cache) return ''
  const rows = Object.entries(cache.kinds).map(([kind, k]) => [kind, String(k.items), formatBytes(k.bytes)])
  return `\nbuilder cache: ${formatBytes(cache.bytes)} of ${formatBytes(cache.maxBytes)} ([pack] cache_max_gb), ${cache.items} item${cache.items === 1 ? '' : 's'}; free it with \`form pack prune\`\n${rows.length ? table(rows, ['KIND', 'ITEMS', 'BYTES']) : ''}`
}

/** What the state service says about membership and the clock: the lines an operator must act on. */
function stateLines(node: NodeDescription): string[] {
  const info = node.services.find((s) => s.name === 'state')?.info
  if (!info) return []
  return [`address: ${info.address}`, `network: ${info.membership}`, `${info.clock}`, ...(info.resynced ? [`state: ${info.resynced}`] : [])]
}
