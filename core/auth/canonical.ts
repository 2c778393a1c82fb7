import { createHash } from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** `address` is the address the caller claims; the signature must recover to it. */
export const HEADERS = { address: 'x-form-address', timestamp: 'x-form-timestamp', nonce: 'x-form-nonce', signature: 'x-form-signature' } as const

/**
 * What a request signature covers, binding it to this one request:
 *   keccak256("FORM-REQUEST-V1\n" + METHOD + "\n" + path?query + "\n" + hex(sha256(body)) + "\n" + timestamp + "\n" + nonce)
 * A captured signature is useless for another method, path or body, and expires with the window.
 */
export function requestDigest(method: string, path: string, body: Uint8Array | { sha256: string }, timestamp: string, nonce: string): Uint8Array {
  // an uploaded file is hashed while it streams, so its digest comes precomputed
  const bodyHash = body instanceof Uint8Array ? createHash('sha256').update(body).digest('hex') : body.sha256
  return keccak_256(new TextEncoder().encode(`FORM-REQUEST-V1\n${method.toUpperCase()}\n${path}\n${bodyHash}\n${timestamp}\n${nonce}`))
}
