import { FormError } from '../../../../core/errors.js'
import { ADDRESS } from '../../../../core/patterns.js'
import { loadSigner } from '../../../kit/index.js'
import { loadOwnerOps } from '../../../state/index.js'
import type { MembershipCommand, NodeAdmitCommand, NodeRevokeCommand } from '../admit.js'

interface Members {
  self: string
  admins: string[]
  threshold: number
  members: { address: string; rank: number }[]
}

async function write(cmd: MembershipCommand, status: 'admitted' | 'revoked') {
  const address = cmd.address.toLowerCase()
  if (!ADDRESS.test(address)) throw new FormError('USAGE', `"${cmd.address}" is not a node address (0x followed by 40 hex digits)`, { hint: 'the waiting node prints it: `form node status` on that node' })
  const client = await cmd.client()
  if (cmd.wallet) {
    const signer = await loadSigner({ configDir: cmd.dirs.configDir, runtimeDir: cmd.dirs.runtimeDir, passwordFile: cmd.passwordFile })
    const { submitOwnerRecord } = await loadOwnerOps()
    const previous = await client.get<{ t: { ms: number; n: number } }>(`/v1/state/records/members/${address}/${signer.address}?deleted=true`).catch(() => undefined)
    await submitOwnerRecord(client, signer, 'members', `${address}/${signer.address}`, { status }, `the ${status === 'admitted' ? 'admission' : 'revocation'} of ${address}`, previous?.t)
  } else {
    await client.post('/v1/state/members', { address, status })
  }
  const m = await client.get<Members>('/v1/state/members')
  const member = m.members.some((x) => x.address === address)
  cmd.print({ address, status, member }, () =>
    status === 'admitted'
      ? member
        ? `${address} is a member of the network`
        : `admission of ${address} recorded; it needs ${m.threshold} admins' admissions (admins: ${m.admins.join(', ')})`
      : member
        ? `revocation of ${address} recorded; other admins' admissions still make it a member`
        : `${address} is no longer a member: its node records count nowhere`,
  )
}

export async function nodeAdmit(cmd: NodeAdmitCommand) {
  await write(cmd, 'admitted')
}

export async function nodeRevoke(cmd: NodeRevokeCommand) {
  await write(cmd, 'revoked')
}
