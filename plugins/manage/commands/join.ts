import { Command, Option } from 'clipanion'
import { FormError } from '../../../core/errors.js'
import { DeveloperCommand } from './shared.js'
import { INTERFACE_NAME } from '../../../core/patterns.js'

export class ManageJoinCommand extends DeveloperCommand {
  interface = Option.String('--interface', { description: 'Name of the local WireGuard interface (default: formnet)' })

  static override paths = [['manage', 'join']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Join formnet: get a formnet address from a node for this machine',
    details: `
      Makes this machine's WireGuard key pair (kept 0600 beside your keystore), asks the node to admit it (a request signed by your wallet), and records the address the node gave in your config. Running it again keeps the same address. Then bring the interface up with \`form manage formnet-up\`.
    `,
    examples: [
      ['Join through the node in your config', '$0 manage join'],
      ['Join through a given node, in a script', '$0 manage join --node http://203.0.113.7:3004 --password-file ~/.form-password'],
    ],
  })

  async run() {
    if (this.interface !== undefined && !INTERFACE_NAME.test(this.interface)) {
      throw new FormError('USAGE', `--interface "${this.interface}" is not an interface name`, { hint: '1-15 letters, digits, . _ or -' })
    }
    const config = await this.userConfig()
    const url = this.nodeUrl(config, config.formnet.host)
    const { loadWireGuardKeys } = await import('../../net/index.js')
    const files = this.formnetFiles(config)
    const keys = await (await loadWireGuardKeys()).loadOrCreateWireGuardKeys(files.keyFile)
    const client = await this.signedClient(config, url)
    const res = await client.post<{ address: string; cidr: string; node: { address: string; formnetAddress: string; publicKey: string; endpoint?: string }; peers: unknown[] }>('/v1/net/join', { publicKey: keys.publicKey })
    const { saveUserConfig } = await import('../../kit/index.js')
    config.formnet = { ...config.formnet, join: true, address: res.address, cidr: res.cidr, node: res.node.address, host: url, interface: this.interface ?? config.formnet.interface ?? 'formnet' }
    await saveUserConfig(this.dirs.configDir, config)
    this.print(
      { address: res.address, cidr: res.cidr, node: res.node, interface: config.formnet.interface, publicKey: keys.publicKey, peers: res.peers.length },
      [
        `joined formnet as ${res.address} (formnet ${res.cidr})`,
        `admitted by node ${res.node.address} (${res.node.formnetAddress} on formnet)`,
        `${res.peers.length} node(s) to peer with; bring the interface up with \`form manage formnet-up --detach\``,
      ].join('\n'),
    )
  }
}
