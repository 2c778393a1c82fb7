import { FormError } from '../../../../core/errors.js'
import { loadUserConfig } from '../../../kit/index.js'
import { routesOf } from '../../lib/ip.js'
import { readDevice } from '../../lib/wireguard/device.js'
import type { NetStatusCommand } from '../status.js'

interface PeerRow {
  kind?: string
  name?: string
  publicKey: string
  endpoint?: string
  allowedIps: string[]
  lastHandshake: number
  rxBytes: number
  txBytes: number
}

export async function netStatus(cmd: NetStatusCommand) {
  let status: Record<string, unknown> & { peers: PeerRow[] }
  if (!cmd.developer) {
    try {
      status = { role: 'node', ...(await (await cmd.client()).get('/v1/net/status')) }
      return show(cmd, status)
    } catch (error) {
      if ((error as FormError).code !== 'NODE_NOT_RUNNING') throw error
    }
  }
  const config = await loadUserConfig(cmd.dirs.configDir)
  const iface = config?.formnet.interface ?? 'formnet'
  if (!config?.formnet.address) throw new FormError('FORMNET_NOT_JOINED', 'no node runs here and this machine has not joined formnet', { hint: 'start a node (`form node start`), or join with `form manage join`' })
  const device = await readDevice(iface)
  status = { role: 'developer', enabled: Boolean(device), interface: iface, address: config.formnet.address, cidr: config.formnet.cidr, node: config.formnet.node, routes: device ? await routesOf(iface) : [], peers: device?.peers ?? [] }
  show(cmd, status)
}

function show(cmd: NetStatusCommand, s: Record<string, unknown> & { peers: PeerRow[] }) {
  const now = Date.now() / 1000
  const age = (t: number) => (t ? `${Math.round(now - t)} s ago` : 'never')
  const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`)
  cmd.print(s, () => {
    const head = s.enabled
      ? `formnet (${s.role}): ${s.interface} ${s.address} in ${s.subnet ?? s.cidr}${s.endpoint ? `, endpoint ${s.endpoint}` : ''}`
      : `formnet (${s.role}) is not up${s.reason ? `: ${s.reason}` : ''}`
    const rows = s.peers.map((p) => `  ${(p.kind ?? 'peer').padEnd(9)} ${(p.name ?? p.publicKey).padEnd(42)} ${p.allowedIps.join(',').padEnd(18)} ${(p.endpoint ?? '-').padEnd(21)} handshake ${age(p.lastHandshake)}, rx ${bytes(p.rxBytes)}, tx ${bytes(p.txBytes)}`)
    const skipped = ((s.skippedRoutes ?? []) as { route: string; conflicts: string[] }[]).map((r) => `  not routed: ${r.route} overlaps ${r.conflicts.join('; ')} (set [net] formnet_cidr to a range this host does not use)`)
    const routes = Array.isArray(s.routes) ? [`routes: ${s.routes.join(', ') || 'none'}`] : []
    return [head, rows.length ? `${rows.length} peer(s):` : 'no peers', ...rows, ...routes, ...skipped].join('\n')
  })
}
