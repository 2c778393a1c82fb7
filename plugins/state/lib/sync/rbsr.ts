import { createHash } from 'node:crypto'

/**
 * Range-based set reconciliation (after Aljoscha Meyer, "Range-Based Set Reconciliation", 2023):
 * two replicas compare fingerprints of ranges of their sorted operation hashes and recurse only
 * into the ranges that differ, so the bytes exchanged grow with the difference, not with the size
 * of the sets.
 *
 * The fingerprint of a range is SHA-256(sum of its ids mod 2^256 ‖ count), truncated. Sums (unlike
 * XOR) make it hard for a writer to craft a set of ops that cancels out and hides from sync, and
 * prefix sums give any range's fingerprint in O(1).
 */

export const ID_BYTES = 32
const FP_BYTES = 16
const LIMBS = ID_BYTES / 4

export type Id = Uint8Array

function compare(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}

/** An immutable sorted set of 32-byte ids with prefix sums for O(1) range fingerprints. */
export class IdSet {
  readonly ids: Id[]
  private readonly prefix: Uint32Array

  constructor(ids: Iterable<Id>) {
    const unique = new Map<string, Id>()
    for (const id of ids) {
      if (id.length !== ID_BYTES) throw new Error(`ids are ${ID_BYTES} bytes, got ${id.length}`)
      unique.set(Buffer.from(id).toString('hex'), id)
    }
    this.ids = [...unique.values()].sort(compare)
    // prefix[i] is the sum of ids[0..i) as 8 little-endian 32-bit limbs, mod 2^256.
    this.prefix = new Uint32Array((this.ids.length + 1) * LIMBS)
    for (let i = 0; i < this.ids.length; i++) {
      const id = this.ids[i]
      const view = new DataView(id.buffer, id.byteOffset, ID_BYTES)
      let carry = 0
      for (let l = 0; l < LIMBS; l++) {
        // the id is big-endian: limb 0 (least significant) is its last 4 bytes
        const s = this.prefix[i * LIMBS + l] + view.getUint32(ID_BYTES - 4 * (l + 1)) + carry
        this.prefix[(i + 1) * LIMBS + l] = s >>> 0
        carry = s > 0xffffffff ? 1 : 0
      }
    }
  }

  get size(): number {
    return this.ids.length
  }

  /** index of the first id >= bound (bound undefined = +infinity) */
  lowerBound(bound: Id | undefined): number {
    if (bound === undefined) return this.ids.length
    let lo = 0
    let hi = this.ids.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compare(this.ids[mid], bound) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  fingerprint(from: number, to: number): Uint8Array {
    const sum = Buffer.alloc(ID_BYTES + 4)
    let borrow = 0
    for (let l = 0; l < LIMBS; l++) {
      let d = this.prefix[to * LIMBS + l] - this.prefix[from * LIMBS + l] - borrow
      borrow = d < 0 ? 1 : 0
      if (d < 0) d += 0x100000000
      sum.writeUInt32BE(d, ID_BYTES - 4 * (l + 1))
    }
    sum.writeUInt32BE(to - from, ID_BYTES)
    return createHash('sha256').update(sum).digest().subarray(0, FP_BYTES)
  }
}

export type Range =
  | { upper: Id | undefined; mode: 'skip' }
  | { upper: Id | undefined; mode: 'fingerprint'; fingerprint: Uint8Array }
  | { upper: Id | undefined; mode: 'ids'; ids: Id[] }

export interface ReconcileOptions {
  /** sub-ranges a differing range is split into */
  branching?: number
  /** below this many ids a range is sent as a list rather than split further */
  listThreshold?: number
  /** upper bound on ids per message, so a message stays within the stream limits */
  maxIdsPerMessage?: number
}

export interface Step {
  /** the reply to send, or undefined when reconciliation is complete */
  reply?: Range[]
  /** ids this side has and the peer lacks: send those operations */
  have: Id[]
  /** ids the peer has and this side lacks: request those operations */
  need: Id[]
}

/** One side of a reconciliation. Both sides run the same code; the initiator calls `initiate`. */
export class Reconciler {
  private readonly branching: number
  private readonly listThreshold: number
  private readonly maxIds: number

  constructor(
    private readonly set: IdSet,
    options: ReconcileOptions = {},
  ) {
    this.branching = options.branching ?? 16
    this.listThreshold = options.listThreshold ?? 2 * (options.branching ?? 16)
    this.maxIds = options.maxIdsPerMessage ?? 4096
  }

  initiate(): Range[] {
    return this.describe(0, this.set.size, undefined)
  }

  /** Fingerprints of sub-ranges, or the ids themselves when the range is small. */
  private describe(from: number, to: number, upper: Id | undefined): Range[] {
    const count = to - from
    if (count <= this.listThreshold) return [{ upper, mode: 'ids', ids: this.set.ids.slice(from, to) }]
    const out: Range[] = []
    const per = Math.ceil(count / this.branching)
    for (let start = from; start < to; start += per) {
      const end = Math.min(to, start + per)
      out.push({ upper: end === to ? upper : this.set.ids[end], mode: 'fingerprint', fingerprint: this.set.fingerprint(start, end) })
    }
    return out
  }

  respond(message: Range[]): Step {
    const reply: Range[] = []
    const have: Id[] = []
    const need: Id[] = []
    let lower = 0
    let idsInReply = 0
    for (const range of message) {
      const upperIndex = this.set.lowerBound(range.upper)
      if (upperIndex < lower) throw new Error('ranges out of order')
      if (range.mode === 'skip') {
        reply.push({ upper: range.upper, mode: 'skip' })
      } else if (range.mode === 'fingerprint') {
        const mine = this.set.fingerprint(lower, upperIndex)
        if (Buffer.compare(range.fingerprint, mine) === 0) {
          reply.push({ upper: range.upper, mode: 'skip' })
        } else if (idsInReply > this.maxIds) {
          // This message is full: send our fingerprint so the peer describes the range next round.
          reply.push({ upper: range.upper, mode: 'fingerprint', fingerprint: mine })
        } else {
          const parts = this.describe(lower, upperIndex, range.upper)
          for (const p of parts) if (p.mode === 'ids') idsInReply += p.ids.length
          reply.push(...parts)
        }
      } else {
        const theirs = new Set(range.ids.map((id) => Buffer.from(id).toString('hex')))
        const mine = this.set.ids.slice(lower, upperIndex)
        const mineHex = new Set(mine.map((id) => Buffer.from(id).toString('hex')))
        for (const id of mine) if (!theirs.has(Buffer.from(id).toString('hex'))) have.push(id)
        for (const id of range.ids) if (!mineHex.has(Buffer.from(id).toString('hex'))) need.push(id)
        reply.push({ upper: range.upper, mode: 'skip' })
      }
      lower = upperIndex
    }
    const merged = mergeSkips(reply)
    return { reply: merged.every((r) => r.mode === 'skip') ? undefined : merged, have, need }
  }
}

/** Adjacent skips collapse into one, so a converged range costs one bound. */
function mergeSkips(ranges: Range[]): Range[] {
  const out: Range[] = []
  for (const r of ranges) {
    const last = out.at(-1)
    if (r.mode === 'skip' && last?.mode === 'skip') last.upper = r.upper
    else out.push({ ...r })
  }
  // a trailing skip carries no information
  while (out.at(-1)?.mode === 'skip') out.pop()
  return out.length ? out : [{ upper: undefined, mode: 'skip' }]
}

// Wire format: per range: bound (u8 length: 0 = +infinity, else 32 and the id), u8 mode, payload.
const MODE = { skip: 0, fingerprint: 1, ids: 2 } as const

export function encodeRanges(ranges: Range[]): Uint8Array {
  const parts: Buffer[] = []
  for (const r of ranges) {
    parts.push(r.upper === undefined ? Buffer.from([0]) : Buffer.concat([Buffer.from([ID_BYTES]), r.upper]))
    parts.push(Buffer.from([MODE[r.mode]]))
    if (r.mode === 'fingerprint') parts.push(Buffer.from(r.fingerprint))
    if (r.mode === 'ids') {
      const n = Buffer.alloc(4)
      n.writeUInt32BE(r.ids.length)
      parts.push(n, ...r.ids.map((id) => Buffer.from(id)))
    }
  }
  return Buffer.concat(parts)
}

export function decodeRanges(bytes: Uint8Array, limits: { maxRanges: number; maxIds: number } = { maxRanges: 100_000, maxIds: 100_000 }): Range[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: Range[] = []
  let i = 0
  let ids = 0
  const need = (n: number) => {
    if (i + n > b.length) throw new Error('truncated reconciliation message')
  }
  let previous: Id | undefined
  let sawInfinity = false
  while (i < b.length) {
    if (out.length >= limits.maxRanges) throw new Error(`more than ${limits.maxRanges} ranges in one message`)
    if (sawInfinity) throw new Error('a range follows the +infinity bound')
    need(1)
    const len = b[i++]
    let upper: Id | undefined
    if (len === 0) sawInfinity = true
    else if (len === ID_BYTES) {
      need(ID_BYTES)
      upper = new Uint8Array(b.subarray(i, i + ID_BYTES))
      i += ID_BYTES
      if (previous && compare(upper, previous) <= 0) throw new Error('range bounds are not increasing')
      previous = upper
    } else throw new Error(`bad bound length ${len}`)
    need(1)
    const mode = b[i++]
    if (mode === MODE.skip) out.push({ upper, mode: 'skip' })
    else if (mode === MODE.fingerprint) {
      need(FP_BYTES)
      out.push({ upper, mode: 'fingerprint', fingerprint: new Uint8Array(b.subarray(i, i + FP_BYTES)) })
      i += FP_BYTES
    } else if (mode === MODE.ids) {
      need(4)
      const n = b.readUInt32BE(i)
      i += 4
      ids += n
      if (ids > limits.maxIds) throw new Error(`more than ${limits.maxIds} ids in one message`)
      need(n * ID_BYTES)
      const list: Id[] = []
      for (let k = 0; k < n; k++, i += ID_BYTES) list.push(new Uint8Array(b.subarray(i, i + ID_BYTES)))
      out.push({ upper, mode: 'ids', ids: list })
    } else throw new Error(`unknown range mode ${mode}`)
  }
  return out
}
