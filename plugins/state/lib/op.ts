import { createHash } from 'node:crypto'
import { canonicalJson } from './canonical.js'
import { compareTimestamps, MAX_MS, MAX_N, type Timestamp } from './hlc.js'
import { ADDRESS, type Author, type Delegation, type SignatureVerifier } from './identity.js'
import { checkPeerBinding } from './peer-binding.js'
import { checkKey, type Rules } from './rules.js'
import type { CollectionWriter } from '../../../core/plugin.js'
import { ED25519_SIGNATURE, HEX64, WALLET_SIGNATURE } from '../../../core/patterns.js'

/**
 * One signed write. `val` is the new value; `del: true` makes it a tombstone. The hash is
 * SHA-256 of the canonical JSON of everything but `sig` (the op's identity); the signature is
 * Ed25519 over "form-op-v1\n" + that same canonical JSON.
 */
export interface Op {
  v: 1
  c: string
  k: string
  val?: unknown
  del?: true
  t: Timestamp
  by: Delegation
  sig: string
}

export interface VerifiedOp {
  op: Op
  hash: string
  /** the op as stored (JSON) */
  bytes: Buffer
  /** what the signature covers, for verification elsewhere (a worker) */
  message: Buffer
  signature: Buffer
  /** ahead of the local clock by more than the allowed skew (but within the hold): apply when due */
  early: boolean
  /** who must have written it for it to count (the rule that allowed it) */
  writer: CollectionWriter
}

export const BAD_SIGNATURE = () => new OpRejected('OP_BAD_SIGNATURE', 'the signature does not match the operation')

export type RejectCode = 'OP_MALFORMED' | 'OP_TOO_LARGE' | 'OP_BAD_SIGNATURE' | 'OP_BAD_DELEGATION' | 'OP_UNAUTHORIZED' | 'OP_FUTURE'

export class OpRejected extends Error {
  constructor(
    readonly code: RejectCode,
    message: string,
  ) {
    super(message)
  }
}

const PREFIX = Buffer.from('form-op-v1\n')
const SIG_FIELD_BYTES = ',"sig":""'.length + 128

function body(op: Omit<Op, 'sig'> & { sig?: string }): string {
  const { sig: _sig, ...rest } = op
  return canonicalJson(rest)
}

export function opHash(op: Omit<Op, 'sig'>): string {
  return createHash('sha256').update(body(op)).digest('hex')
}

export function createOp(author: Author, collection: string, key: string, value: unknown, t: Timestamp): Op {
  const unsigned: Omit<Op, 'sig'> = value === undefined ? { v: 1, c: collection, k: key, del: true, t, by: author.delegation } : { v: 1, c: collection, k: key, val: value, t, by: author.delegation }
  const sig = author.sign(Buffer.concat([PREFIX, Buffer.from(body(unsigned))]))
  return { ...unsigned, sig: Buffer.from(sig).toString('hex') }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const OP_FIELDS = new Set(['v', 'c', 'k', 'val', 'del', 't', 'by', 'sig'])

const isBounded = (v: unknown, max: number) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= max

/** Checks the shape of untrusted input; returns the reason it is malformed. */
function malformed(x: unknown): string | undefined {
  if (!isObject(x)) return 'an operation is a JSON object'
  for (const f of Object.keys(x)) if (!OP_FIELDS.has(f)) return `unknown field "${f}"`
  if (x.v !== 1) return 'field v must be 1'
  if (typeof x.c !== 'string') return 'field c (collection) must be a string'
  if (typeof x.k !== 'string') return 'field k (key) must be a string'
  const keyProblem = checkKey(x.k)
  if (keyProblem) return keyProblem
  if (x.del !== undefined && x.del !== true) return 'field del must be true when present'
  if ((x.del === true) === ('val' in x)) return 'exactly one of val and del must be present'
  if (!isObject(x.t) || !isBounded(x.t.ms, MAX_MS) || !isBounded(x.t.n, MAX_N) || Object.keys(x.t).length !== 2) {
    return `field t must be {ms, n} with integers 0 <= ms <= ${MAX_MS} and 0 <= n <= ${MAX_N}`
  }
  return signerProblem(x)
}

/** Why `x.by` is not a delegation or `x.sig` not an Ed25519 signature (shared by operations and heartbeats). */
export function signerProblem(x: Record<string, unknown>): string | undefined {
  const d = x.by
  if (!isObject(d) || typeof d.address !== 'string' || !ADDRESS.test(d.address) || typeof d.key !== 'string' || !HEX64.test(d.key) || !Number.isSafeInteger(d.issued) || typeof d.sig !== 'string' || !WALLET_SIGNATURE.test(d.sig) || Object.keys(d).length !== 4) {
    return 'field by must be a delegation {address, key, issued, sig}'
  }
  if (typeof x.sig !== 'string' || !ED25519_SIGNATURE.test(x.sig)) return 'field sig must be 64 bytes of hex'
  return undefined
}

export interface VerifyLimits {
  maxOpBytes: number
  /** operations further ahead of `now` than this are held until due */
  maxSkewMs: number
  /** operations further ahead of `now` than this are rejected (OP_FUTURE) */
  maxHoldMs: number
  now: number
  rules: Rules
  /** leave the Ed25519 check to the caller (it batches them on worker threads) */
  deferSignature?: boolean
}

/**
 * Everything a replica checks before it stores an operation, in order of cost: shape, size,
 * authorization and value schema (pure), clock, delegation (cached secp256k1), signature (Ed25519).
 */
export function verifyOp(input: unknown, verifier: SignatureVerifier, limits: VerifyLimits): VerifiedOp {
  const problem = malformed(input)
  if (problem) throw new OpRejected('OP_MALFORMED', problem)
  const op = input as Op
  let unsigned: string
  try {
    unsigned = body(op)
  } catch (error) {
    throw new OpRejected('OP_MALFORMED', `value cannot be encoded: ${(error as Error).message}`)
  }
  // The canonical op is the unsigned body plus `,"sig":"<128 hex>"`: its size is known without encoding it again.
  const size = Buffer.byteLength(unsigned) + SIG_FIELD_BYTES
  if (size > limits.maxOpBytes) throw new OpRejected('OP_TOO_LARGE', `operation is ${size} bytes; the limit is ${limits.maxOpBytes}`)
  const allowed = limits.rules.authorize(op.c, op.k, op.by.address)
  if ('denied' in allowed) throw new OpRejected('OP_UNAUTHORIZED', allowed.denied)
  if (!op.del) {
    const bad = limits.rules.checkValue(allowed.rule, op.val)
    if (bad) throw new OpRejected('OP_MALFORMED', bad)
    const binding = checkValue(op)
    if (binding) throw new OpRejected('OP_UNAUTHORIZED', binding)
  }
  if (op.t.ms > limits.now + limits.maxHoldMs) {
    throw new OpRejected('OP_FUTURE', `timestamp ${new Date(op.t.ms).toISOString()} is more than ${limits.maxHoldMs} ms ahead of this node's clock (${new Date(limits.now).toISOString()}); if this node's clock is behind, fix it (NTP)`)
  }
  if (!verifier.delegation(op.by)) throw new OpRejected('OP_BAD_DELEGATION', `the delegation is not signed by ${op.by.address}`)
  const message = Buffer.concat([PREFIX, Buffer.from(unsigned)])
  const signature = Buffer.from(op.sig, 'hex')
  if (!limits.deferSignature && !verifier.signature(op.by.key, message, signature)) throw BAD_SIGNATURE()
  // Stored as plain JSON: the hash covers the canonical body, so the stored form need not be canonical.
  const bytes = Buffer.from(JSON.stringify(op))
  return { op, hash: createHash('sha256').update(unsigned).digest('hex'), bytes, message, signature, early: op.t.ms > limits.now + limits.maxSkewMs, writer: allowed.rule.writer }
}

/** Last writer wins: the later timestamp, ties broken by the larger hash. */
export function wins(a: { t: Timestamp; hash: string }, b: { t: Timestamp; hash: string }): boolean {
  const c = compareTimestamps(a.t, b.t)
  return c > 0 || (c === 0 && a.hash > b.hash)
}

/** Rules on values that depend only on the operation itself (so every replica decides alike). */
function checkValue(op: Op): string | undefined {
  if (op.c === 'nodes' && typeof op.val === 'object' && op.val !== null && 'peerId' in op.val) {
    const v = op.val as { peerId: unknown; peerIdProof?: unknown }
    return checkPeerBinding(op.k, v.peerId, v.peerIdProof)
  }
  return undefined
}
