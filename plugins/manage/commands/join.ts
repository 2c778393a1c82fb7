import { Command, Option } from 'clipanion'
import { DeveloperCommand } from './shared.js'

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
    return (await import('./run/join.js')).manageJoin(this)
  }
}
