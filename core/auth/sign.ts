import { randomBytes } from 'node:crypto'
import { HEADERS, requestDigest } from './canonical.js'

export interface Signer {
  address: string
  /** a 65-byte recoverable secp256k1 signature of a 32-byte digest */
  sign(digest: Uint8Array): Uint8Array
}

export function signRequest(req: { method: string; path: string; body: Uint8Array | { sha256: string }; signer: Signer; now?: number }): Record<string, string> {
  const timestamp = String(req.now ?? Date.now())
  const nonce = randomBytes(16).toString('hex')
  const signature = req.signer.sign(requestDigest(req.method, req.path, req.body, timestamp, nonce))
  return { [HEADERS.address]: req.signer.address, [HEADERS.timestamp]: timestamp, [HEADERS.nonce]: nonce, [HEADERS.signature]: Buffer.from(signature).toString('hex') }
}
