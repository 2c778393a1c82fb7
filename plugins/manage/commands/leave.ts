import { Command } from 'clipanion'
import { DeveloperCommand } from './shared.js'

export class ManageLeaveCommand extends DeveloperCommand {
  static override paths = [['manage', 'leave']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Leave formnet: the node removes this machine from every node\'s peers',
    details: 'Stops a running `formnet-up`, asks the admitting node to remove your peer record (every node then drops the peer), and forgets the address and the WireGuard key.',
    examples: [['Leave', '$0 manage leave --password-file ~/.form-password']],
  })

  async run() {
    return (await import('./run/leave.js')).manageLeave(this)
  }
}
