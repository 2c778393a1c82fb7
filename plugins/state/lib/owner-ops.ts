import { generateKeyPairSync } from 'node:crypto'
import type { NodeClient } from '../../../core/client.js'
import { FormError } from '../../../core/errors.js'
import type { Timestamp } from './hlc.js'
import { authorFromKeys, delegateKey, type Author } from './identity.js'
import { createOp, type Op } from './op.js'

/**
 * Writing state as a developer: the wallet (unlocked by the CLI for one command) delegates a fresh
 * Ed25519 key, which signs the operations. The node then stores them as written by the wallet's
 * address, exactly as if they had come from any other replica.
 */
export function ownerAuthor(signer: { address: string; sign(digest: Uint8Array): Uint8Array }): Author {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex')
  return authorFromKeys({ opsPrivateKey: privateKey.export({ format: 'der', type: 'pkcs8' }), delegation: delegateKey(signer, pub) })
}

/**
 * A timestamp later than `previous` (the record being replaced): last-writer-wins must pick this
 * write even when this machine's clock is behind the writer of the previous one.
 */
export function timestampAfter(previous?: Timestamp, now = Date.now()): Timestamp {
  if (!previous || now > previous.ms) return { ms: now, n: 0 }
  return { ms: previous.ms, n: previous.n + 1 }
}

export function ownerOp(author: Author, collection: string, key: string, value: unknown, previous?: Timestamp): Op {
  return createOp(author, collection, key, value, timestampAfter(previous))
}

/**
 * Signs `collection/key = value` as the wallet's own record and submits it to the node; throws a
 * FormError naming `what` when the node rejects it.
 */
export async function submitOwnerRecord(
  client: NodeClient,
  signer: { address: string; sign(digest: Uint8Array): Uint8Array },
  collection: string,
  key: string,
  value: unknown,
  what: string,
  previous?: Timestamp,
): Promise<void> {
  const op = ownerOp(ownerAuthor(signer), collection, key, value, previous)
  const result = await client.post<{ rejected: { code: string; message: string }[] }>('/v1/state/ops', { ops: [op] })
  if (result.rejected.length) {
    const r = result.rejected[0]
    throw new FormError('STATE_WRITE_REJECTED', `the node rejected the write of ${what}: ${r.message} (${r.code})`, {
      hint: r.code === 'OP_FUTURE' ? "check this machine's clock" : undefined,
    })
  }
}
