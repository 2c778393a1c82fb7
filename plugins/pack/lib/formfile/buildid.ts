import { createHash } from 'node:crypto'
import { ADDRESS_ANY_CASE } from '../../../../core/patterns.js'

/**
 * The build id, as in the original system: hex(SHA3-256(owner address bytes ‖ NAME in UTF-8)),
 * where the address is the owner's 20 bytes (not its hex text). The same owner building the same
 * NAME gets the same id, so a rebuild replaces the previous build.
 */
export function buildId(ownerAddress: string, name: string): string {
  if (!ADDRESS_ANY_CASE.test(ownerAddress)) throw new TypeError(`"${ownerAddress}" is not a 20-byte hex address`)
  return createHash('sha3-256').update(Buffer.from(ownerAddress.slice(2), 'hex')).update(Buffer.from(name, 'utf8')).digest('hex')
}
