import { FormError } from '../errors.js'
import { recoverAddress } from './address.js'
import { AUDIENCE, HEADERS, requestDigest, type BodyDigest } from './canonical.js'
import { ADDRESS, WALLET_SIGNATURE } from '../patterns.js'

export interface VerifierOptions {
  /** how far a request's timestamp may be from the node's clock, either way (default 60 s) */
  windowMs?: number
  now?: () => number
  /** most nonces remembered at once; past it, requests are refused rather than risking a replay */
  maxNonces?: number
  /**
   * The names this node answers to (its address, its peer id). When given, a request must name one
   * of them as its audience, so a request signed for one node is refused by every other.
   */
  audiences?: () => Iterable<string>
}

export interface RequestToVerify {
  method: string
  path: string
  /** the body, or the SHA-256 and length of a body streamed to a file (declared before it was sent) */
  body: Uint8Array | BodyDigest
  /** when the request arrived: a long upload is judged fresh by its start (default: now) */
  receivedAt?: number
  headers: Record<string, string | string[] | undefined>
}

const fail = (code: string, message: string, hint?: string) => new FormError(code, message, { httpStatus: 401, hint })

/**
 * Checks signed requests: the signature recovers the caller's address, the timestamp is inside the
 * window, and the nonce was not seen within it. Nonces are forgotten once their timestamp leaves the
 * window, after which the timestamp check alone refuses a replay.
 */
export function createRequestVerifier(options: VerifierOptions = {}) {
  const windowMs = options.windowMs ?? 60_000
  const now = options.now ?? Date.now
  const maxNonces = options.maxNonces ?? 1_000_000
  const seen = new Map<string, number>()

  const prune = (t: number) => {
    for (const [nonce, ts] of seen) {
      if (ts >= t - windowMs) break // insertion order is roughly time order
      seen.delete(nonce)
    }
  }

  return {
    verify(req: RequestToVerify): string {
      const header = (name: string) => {
        const v = req.headers[name]
        return Array.isArray(v) ? v[0] : v
      }
      const timestamp = header(HEADERS.timestamp)
      const nonce = header(HEADERS.nonce)
      const signature = header(HEADERS.signature)
      const claimed = header(HEADERS.address)?.toLowerCase()
      if (!timestamp || !nonce || !signature || !claimed) {
        throw fail('AUTH_MISSING', 'this request must be signed', 'sign it with your wallet (form does this when you have run `form kit init`)')
      }
      if (!ADDRESS.test(claimed) || !/^\d{1,16}$/.test(timestamp) || !/^[0-9a-f]{32}$/.test(nonce) || !WALLET_SIGNATURE.test(signature)) {
        throw fail('AUTH_MALFORMED', 'the signature headers are malformed')
      }
      const audience = header(HEADERS.audience) ?? ''
      if (options.audiences) {
        const mine = [...options.audiences()]
        if (!mine.includes(audience)) {
          throw fail(
            'AUTH_WRONG_AUDIENCE',
            audience ? `this request was signed for ${AUDIENCE.test(audience) ? `the node "${audience}"` : 'another node'}, not for this one (${mine[0] ?? 'unnamed'})` : 'this request names no node as its audience',
            'a signed request is valid on one node only: sign a new one for this node (form asks the node for its audience at GET /v1/auth/audience); update form if it is older than the node',
          )
        }
      } else if (audience && !AUDIENCE.test(audience)) throw fail('AUTH_MALFORMED', 'the signature headers are malformed')
      const t = req.receivedAt ?? now()
      const ts = Number(timestamp)
      if (Math.abs(t - ts) > windowMs) {
        throw fail('AUTH_EXPIRED', `the request was signed ${Math.round((t - ts) / 1000)} s from the node's time; the window is ${windowMs / 1000} s`, 'check that your clock is right')
      }
      const address = recoverAddress(requestDigest(req.method, req.path, req.body, timestamp, nonce, audience), Buffer.from(signature, 'hex'))
      if (!address) throw fail('AUTH_BAD_SIGNATURE', 'the request signature is invalid')
      // Any signature recovers to some key; only the claimed one proves the request is unaltered.
      if (address !== claimed) throw fail('AUTH_BAD_SIGNATURE', `the signature does not match this request from ${claimed}`, 'the request was altered, or signed for another method, path, body or node')
      prune(t)
      if (seen.has(nonce)) throw fail('AUTH_REPLAY', 'this request was already received (its nonce was used before)', 'send a new request; never resend a signed one')
      if (seen.size >= maxNonces) throw fail('AUTH_BUSY', 'too many signed requests in the window', 'retry in a minute')
      seen.set(nonce, ts)
      return address
    },
  }
}
