import { readFile } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { FormError, errnoCode } from '../../../../core/errors.js'
import { writeSecretFile } from '../../../../core/files.js'

/** The node's libp2p key, kept across restarts so its peer id (and the peers that know it) stay valid. */
export async function loadOrCreatePeerKey(file: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') {
      throw new FormError('P2P_KEY_INVALID', `the libp2p key ${file} is damaged: ${(error as Error).message}`, { hint: 'restore it, or delete it to give the node a new peer id' })
    }
  }
  const key = await generateKeyPair('Ed25519')
  await writeSecretFile(file, privateKeyToProtobuf(key))
  return key
}
