import { canonicalJson } from './canonical.js'
import { MAX_MS } from './hlc.js'
import type { Author, Delegation, SignatureVerifier } from './identity.js'
import { isObject, signerProblem } from './op.js'

/**
 * A node's "I am alive": small, signed by the node's state key, and never stored. Receivers judge
 * liveness by when they receive one (their own clock); `ms` (the sender's clock) only orders a
 * node's heartbeats, so an old one replayed is recognised, and measures clock offsets.
 */
export interface Heartbeat {
  v: 1
  ms: number
  by: Delegation
  sig: string
}

const PREFIX = 'form-heartbeat-v1\n'
const FIELDS = new Set(['v', 'ms', 'by', 'sig'])
/** a heartbeat is a delegation, a signature and a number: anything much larger is not one */
export const MAX_HEARTBEAT_BYTES = 1024

const message = (h: Omit<Heartbeat, 'sig'>) => Buffer.from(PREFIX + canonicalJson({ v: h.v, ms: h.ms, by: h.by }))

export function createHeartbeat(author: Author, ms: number): Heartbeat {
  const unsigned = { v: 1 as const, ms, by: author.delegation }
  return { ...unsigned, sig: Buffer.from(author.sign(message(unsigned))).toString('hex') }
}

/** Why untrusted input is not a well-formed heartbeat (its signature is not checked here), or undefined. */
export function heartbeatProblem(x: unknown): string | undefined {
  if (!isObject(x)) return 'a heartbeat is a JSON object'
  for (const f of Object.keys(x)) if (!FIELDS.has(f)) return `unknown heartbeat field "${f}"`
  if (x.v !== 1) return 'heartbeat field v must be 1'
  if (!Number.isSafeInteger(x.ms) || (x.ms as number) < 0 || (x.ms as number) > MAX_MS) return `heartbeat field ms must be an integer 0..${MAX_MS}`
  return signerProblem(x)
}

/** Whether the delegation and signature of a well-formed heartbeat hold (the costly part: call it last). */
export function heartbeatSigned(h: Heartbeat, verifier: SignatureVerifier): boolean {
  return verifier.delegation(h.by) && verifier.signature(h.by.key, message(h), Buffer.from(h.sig, 'hex'))
}
