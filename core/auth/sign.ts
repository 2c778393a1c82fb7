import { randomBytes } from 'node:crypto'
import { HEADERS, requestDigest, type BodyDigest } from './canonical.js'

export interface Signer {
  address: string
  /** a 65-byte recoverable secp256k1 signature of a 32-byte digest */
  sign(digest: Uint8Array): Uint8Array
}

/**
 * The headers of a signed request. `audience` is the node it is meant for (GET /v1/auth/audience
 * tells it; core/client.ts asks once per node): every other node refuses the request.
 */
export function signRequest(req: { method: string; path: string; body: Uint8Array | BodyDigest; audience?: string; signer: Signer; now?: number }): Record<string, string> {
  const timestamp = String(req.now ?? Date.now())
  const nonce = randomBytes(16).toString('hex')
  const audience = req.audience ?? ''
  const signature = req.signer.sign(requestDigest(req.method, req.path, req.body, timestamp, nonce, audience))
  return {
    [HEADERS.address]: req.signer.address,
    [HEADERS.timestamp]: timestamp,
    [HEADERS.nonce]: nonce,
    [HEADERS.audience]: audience,
    [HEADERS.signature]: Buffer.from(signature).toString('hex'),
  }
}
