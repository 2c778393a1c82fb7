import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'
import { ADDRESS } from '../../../core/patterns.js'

interface Members {
  self: string
  admins: string[]
  threshold: number
  members: { address: string; rank: number }[]
}

abstract class MembershipCommand extends FormCommand {
  address = Option.String({ required: true, name: 'address' })
  wallet = Option.Boolean('--wallet', false, { description: 'Sign with your wallet (an admin operator address) instead of the node\'s own key' })
  passwordFile = Option.String('--password-file', { description: 'File holding the wallet password (with --wallet)' })

  protected async write(status: 'admitted' | 'revoked') {
    const address = this.address.toLowerCase()
    if (!ADDRESS.test(address)) throw new FormError('USAGE', `"${this.address}" is not a node address (0x followed by 40 hex digits)`, { hint: 'the waiting node prints it: `form node status` on that node' })
    const client = await this.client()
    if (this.wallet) {
      const { loadSigner } = await import('../../kit/index.js')
      const { loadOwnerOps } = await import('../../state/index.js')
      const signer = await loadSigner({ configDir: this.dirs.configDir, runtimeDir: this.dirs.runtimeDir, passwordFile: this.passwordFile })
      const { submitOwnerRecord } = await loadOwnerOps()
      const previous = await client.get<{ t: { ms: number; n: number } }>(`/v1/state/records/members/${address}/${signer.address}?deleted=true`).catch(() => undefined)
      await submitOwnerRecord(client, signer, 'members', `${address}/${signer.address}`, { status }, `the ${status === 'admitted' ? 'admission' : 'revocation'} of ${address}`, previous?.t)
    } else {
      await client.post('/v1/state/members', { address, status })
    }
    const m = await client.get<Members>('/v1/state/members')
    const member = m.members.some((x) => x.address === address)
    this.print({ address, status, member }, () =>
      status === 'admitted'
        ? member
          ? `${address} is a member of the network`
          : `admission of ${address} recorded; it needs ${m.threshold} admins' admissions (admins: ${m.admins.join(', ')})`
        : member
          ? `revocation of ${address} recorded; other admins' admissions still make it a member`
          : `${address} is no longer a member: its node records count nowhere`,
    )
  }
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
    await this.write('admitted')
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
    await this.write('revoked')
  }
}
