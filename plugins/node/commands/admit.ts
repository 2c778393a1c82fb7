import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export abstract class MembershipCommand extends FormCommand {
  address = Option.String({ required: true, name: 'address' })
  wallet = Option.Boolean('--wallet', false, { description: 'Sign with your wallet (an admin operator address) instead of the node\'s own key' })
  passwordFile = Option.String('--password-file', { description: 'File holding the wallet password (with --wallet)' })
}

export class NodeAdmitCommand extends MembershipCommand {
  static override paths = [['node', 'admit']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Admit a node to the network (an admin signs a members record)',
    details:
      'A node counts (its heartbeat, formnet subnet, builds and instances) only once admitted. Run this on a node whose own address is an admin (a devnet\'s first node, or one listed in `[state] admins`), or with --wallet to sign with an admin operator wallet. With `[state] admission_threshold` above 1, that many admins must admit it.',
    examples: [
      ['Admit the node that printed its address in `form node status`', '$0 node admit 0x0123456789abcdef0123456789abcdef01234567'],
      ['Sign with your admin wallet', '$0 node admit --wallet 0x0123456789abcdef0123456789abcdef01234567'],
    ],
  })

  async run() {
    return (await import('./run/admit.js')).nodeAdmit(this)
  }
}

export class NodeRevokeCommand extends MembershipCommand {
  static override paths = [['node', 'revoke']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Revoke a node\'s membership (its records stop counting on every node)',
    details: 'Writes a revocation in place of this admin\'s admission. Its records stay stored but are ignored by every replica, as long as fewer than `admission_threshold` admins admit it.',
    examples: [['Revoke a node', '$0 node revoke 0x0123456789abcdef0123456789abcdef01234567']],
  })

  async run() {
    return (await import('./run/admit.js')).nodeRevoke(this)
  }
}
