import { createHash } from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** `address` is the address the caller claims; the signature must recover to it. */
export const HEADERS = {
  address: 'x-form-address',
  timestamp: 'x-form-timestamp',
  nonce: 'x-form-nonce',
  signature: 'x-form-signature',
  /** the node the request is meant for (its address or peer id), so it cannot be replayed to another */
  audience: 'x-form-audience',
  /** an upload's SHA-256, declared (and signed) before its body is sent */
  bodySha256: 'x-form-body-sha256',
} as const

/** A body known by its hash and length: an upload, checked while it streams to a file. */
export interface BodyDigest {
  sha256: string
  length: number
}

export function digestBody(body: Uint8Array | BodyDigest): BodyDigest {
  return body instanceof Uint8Array ? { sha256: createHash('sha256').update(body).digest('hex'), length: body.length } : body
}

/**
 * What a request signature covers, binding it to this one request on this one node:
 *   keccak256("FORM-REQUEST-V2\n" + METHOD + "\n" + path?query + "\n" + hex(sha256(body)) + "\n" + length(body)
 *             + "\n" + timestamp + "\n" + nonce + "\n" + audience)
 * A captured signature is useless for another method, path, body or node, and expires with the window.
 */
export function requestDigest(method: string, path: string, body: Uint8Array | BodyDigest, timestamp: string, nonce: string, audience: string): Uint8Array {
  const { sha256, length } = digestBody(body)
  return keccak_256(new TextEncoder().encode(`FORM-REQUEST-V2\n${method.toUpperCase()}\n${path}\n${sha256}\n${length}\n${timestamp}\n${nonce}\n${audience}`))
}

/** What an audience may look like: an address (0x…), a libp2p peer id, or a node's generated id. */
export const AUDIENCE = /^[0-9A-Za-z._:-]{1,128}$/
