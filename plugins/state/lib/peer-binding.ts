import { verify } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { ED25519_SIGNATURE } from '../../../core/patterns.js'
import { ed25519PublicKeyFromHex } from './identity.js'

/**
 * A node record names its libp2p peer id together with a signature by that peer's key over the
 * node's address, so no node can claim another's peer id.
 */
export function peerBindingMessage(address: string): Uint8Array {
  return new TextEncoder().encode(`form-peer-binding-v1\n${address}`)
}

/** Why the binding does not hold, or undefined when it does. */
export function checkPeerBinding(address: string, peerId: unknown, proof: unknown): string | undefined {
  if (typeof peerId !== 'string') return 'peerId must be a string'
  if (typeof proof !== 'string' || !ED25519_SIGNATURE.test(proof)) return 'a node record with a peerId needs peerIdProof (64 bytes of hex)'
  let raw: Uint8Array
  try {
    const id = peerIdFromString(peerId)
    if (id.type !== 'Ed25519') return `peer id ${peerId} is not an Ed25519 key`
    raw = id.publicKey.raw
  } catch {
    return `"${peerId}" is not a libp2p peer id`
  }
  const ok = verify(null, peerBindingMessage(address), ed25519PublicKeyFromHex(Buffer.from(raw).toString('hex')), Buffer.from(proof, 'hex'))
  return ok ? undefined : `peerIdProof is not a signature of ${peerId} over ${address}`
}
