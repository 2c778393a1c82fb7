import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

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

export class NetStatusCommand extends FormCommand {
  static override paths = [['net', 'status']]
  static override usage = Command.Usage({
    category: 'Net',
    description: 'Show formnet: the interface, its address and every peer with its last handshake and traffic',
    details: 'Shows the local node\'s formnet interface when a node runs here; otherwise (or with `--developer`) the interface of `form manage formnet-up`.',
    examples: [
      ['The node\'s formnet', '$0 net status'],
      ['This developer machine\'s interface, as JSON', '$0 net status --developer --json'],
    ],
  })
  developer = Option.Boolean('--developer', false, { description: 'Show the interface of `form manage formnet-up`, not the node\'s' })

  async run() {
    let status: Record<string, unknown> & { peers: PeerRow[] }
    if (!this.developer) {
      try {
        status = { role: 'node', ...(await (await this.client()).get('/v1/net/status')) }
        return this.show(status)
      } catch (error) {
        if ((error as FormError).code !== 'NODE_NOT_RUNNING') throw error
      }
    }
    const { loadUserConfig } = await import('../../kit/index.js')
    const config = await loadUserConfig(this.dirs.configDir)
    const iface = config?.formnet.interface ?? 'formnet'
    if (!config?.formnet.address) throw new FormError('FORMNET_NOT_JOINED', 'no node runs here and this machine has not joined formnet', { hint: 'start a node (`form node start`), or join with `form manage join`' })
    const { readDevice } = await import('../lib/wireguard/device.js')
    const device = await readDevice(iface)
    const { routesOf } = await import('../lib/ip.js')
    status = { role: 'developer', enabled: Boolean(device), interface: iface, address: config.formnet.address, cidr: config.formnet.cidr, node: config.formnet.node, routes: device ? await routesOf(iface) : [], peers: device?.peers ?? [] }
    this.show(status)
  }

  private show(s: Record<string, unknown> & { peers: PeerRow[] }) {
    const now = Date.now() / 1000
    const age = (t: number) => (t ? `${Math.round(now - t)} s ago` : 'never')
    const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`)
    this.print(s, () => {
      const head = s.enabled
        ? `formnet (${s.role}): ${s.interface} ${s.address} in ${s.subnet ?? s.cidr}${s.endpoint ? `, endpoint ${s.endpoint}` : ''}`
        : `formnet (${s.role}) is not up${s.reason ? `: ${s.reason}` : ''}`
      const rows = s.peers.map((p) => `  ${(p.kind ?? 'peer').padEnd(9)} ${(p.name ?? p.publicKey).padEnd(42)} ${p.allowedIps.join(',').padEnd(18)} ${(p.endpoint ?? '-').padEnd(21)} handshake ${age(p.lastHandshake)}, rx ${bytes(p.rxBytes)}, tx ${bytes(p.txBytes)}`)
      const skipped = ((s.skippedRoutes ?? []) as { route: string; conflicts: string[] }[]).map((r) => `  not routed: ${r.route} overlaps ${r.conflicts.join('; ')} (set [net] formnet_cidr to a range this host does not use)`)
      const routes = Array.isArray(s.routes) ? [`routes: ${s.routes.join(', ') || 'none'}`] : []
      return [head, rows.length ? `${rows.length} peer(s):` : 'no peers', ...rows, ...routes, ...skipped].join('\n')
    })
  }
}
