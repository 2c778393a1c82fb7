import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { FormError, errnoCode } from '../../../../core/errors.js'

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
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, file)
  return key
}
