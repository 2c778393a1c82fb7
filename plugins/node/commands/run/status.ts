import { isFormError } from '../../../../core/errors.js'
import { formatBytes, formatDuration, table } from '../../../../core/output.js'
import type { NodeStatusCommand } from '../status.js'

interface NodeDescription {
  version: string
  pid: number
  uptimeMs: number
  socket: string
  dataDir: string
  configFile: string | null
  services: { name: string; plugin: string; state: string; reason?: string; startedInMs: number; info: Record<string, unknown> }[]
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

export async function nodeStatus(cmd: NodeStatusCommand) {
  const client = await cmd.client()
  let node: NodeDescription
  try {
    node = await client.get<NodeDescription>('/v1/node')
  } catch (error) {
    if (isFormError(error) && error.code === 'NODE_NOT_RUNNING') {
      cmd.print({ running: false, socket: cmd.dirs.socket }, `${cmd.color('yellow', 'not running')} (no node answers on ${cmd.dirs.socket})\nstart one with \`form node start\``)
      return 3
    }
    throw error
  }
  // one word for monitoring: a node runs on without a service that failed or whose loop died, and says so here
  const down = node.services.filter((s) => s.state !== 'running')
  const health = down.length ? 'degraded' : 'ok'
  cmd.print({ running: true, health, notRunning: down.map((s) => s.name), ...node }, () => {
    const state = down.length ? `${cmd.color('yellow', 'degraded')}: ${down.map((s) => `${s.name} ${s.state}`).join(', ')}` : cmd.color('green', 'running')
    const head = [
      `${state}  pid ${node.pid}, up ${formatDuration(node.uptimeMs)}, form ${node.version}`,
      `socket:  ${node.socket}`,
      `data:    ${node.dataDir}`,
      `config:  ${node.configFile ?? 'built-in defaults'}`,
      ...stateLines(node),
      '',
    ].join('\n')
    const rows = node.services.map((s) => [s.name, s.plugin, s.state, formatDuration(s.startedInMs), summarize(s.info)])
    // reasons are sentences: under the table, where they need not fit a column
    const problems = node.services.filter((s) => s.reason).map((s) => `${s.name}: ${cmd.color(s.state === 'failed' ? 'red' : 'yellow', s.state)}: ${s.reason}\n`)
    return head + '\n' + (rows.length ? table(rows, ['SERVICE', 'PLUGIN', 'STATE', 'START', 'INFO']) : 'no services\n') + (problems.length ? '\n' + problems.join('') : '') + cacheSection(node)
  })
}
