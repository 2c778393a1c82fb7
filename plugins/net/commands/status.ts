import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

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
    return (await import('./run/status.js')).netStatus(this)
  }
}
