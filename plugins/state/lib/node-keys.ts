import { readFile } from 'node:fs/promises'
import { FormError, errnoCode } from '../../../core/errors.js'
import { writeSecretFile } from '../../../core/files.js'
import { authorFromKeys, generateAuthorKeys, verifyDelegation, type Author, type AuthorKeys } from './identity.js'

interface KeyFile {
  version: 1
  wallet: string
  ops: string
  delegation: AuthorKeys['delegation']
}

/**
 * The node's own identity: a wallet key (its address in state) and the Ed25519 key it signs
 * operations with, created on first start. Kept in one 0600 file written atomically.
 * TODO(kit): an operator may point the node at an encrypted operator keystore instead.
 */
export async function loadOrCreateNodeKeys(file: string): Promise<{ author: Author; keys: AuthorKeys; created: boolean }> {
  try {
    const data = JSON.parse(await readFile(file, 'utf8')) as KeyFile
    const keys: AuthorKeys = { walletPrivateKey: Buffer.from(data.wallet, 'hex'), opsPrivateKey: Buffer.from(data.ops, 'hex'), delegation: data.delegation }
    if (data.version !== 1 || !verifyDelegation(keys.delegation)) throw new Error('the delegation does not verify')
    return { author: authorFromKeys(keys), keys, created: false }
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') {
      throw new FormError('NODE_KEYS_INVALID', `the node key file ${file} is unreadable or damaged: ${(error as Error).message}`, {
        hint: 'restore it from a backup; deleting it gives the node a new identity (a new address in state)',
      })
    }
  }
  const keys = generateAuthorKeys()
  const data: KeyFile = { version: 1, wallet: Buffer.from(keys.walletPrivateKey).toString('hex'), ops: keys.opsPrivateKey.toString('hex'), delegation: keys.delegation }
  await writeSecretFile(file, JSON.stringify(data, null, 2) + '\n')
  return { author: authorFromKeys(keys), keys, created: true }
}
