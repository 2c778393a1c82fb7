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

/** What reconciliation reads of a sorted id set: positions, bounds and range fingerprints. */
export interface SortedIds {
  readonly size: number
  /** index of the first id >= bound (bound undefined = +infinity) */
  lowerBound(bound: Id | undefined): number
  /** the id at index i (0 <= i < size) */
  at(i: number): Id
  /** ids[from..to) */
  slice(from: number, to: number): Id[]
  fingerprint(from: number, to: number): Uint8Array
}

/** acc += id (sign 1) or acc -= id (sign -1), both as 8 little-endian 32-bit limbs mod 2^256 */
function addId(acc: Uint32Array, offset: number, id: Id, sign: 1 | -1): void {
  const view = new DataView(id.buffer, id.byteOffset, ID_BYTES)
  let carry = 0
  for (let l = 0; l < LIMBS; l++) {
    // the id is big-endian: limb 0 (least significant) is its last 4 bytes
    const s = acc[offset + l] + sign * view.getUint32(ID_BYTES - 4 * (l + 1)) + carry
    acc[offset + l] = s >>> 0
    carry = s > 0xffffffff ? 1 : s < 0 ? -1 : 0
  }
}

/** SHA-256(sum ‖ count) of a range whose sum is hi - lo (limbs), truncated */
function fingerprintOf(hi: Uint32Array, hiOffset: number, lo: Uint32Array, loOffset: number, count: number): Uint8Array {
  const sum = Buffer.alloc(ID_BYTES + 4)
  let borrow = 0
  for (let l = 0; l < LIMBS; l++) {
    let d = hi[hiOffset + l] - lo[loOffset + l] - borrow
    borrow = d < 0 ? 1 : 0
    if (d < 0) d += 0x100000000
    sum.writeUInt32BE(d, ID_BYTES - 4 * (l + 1))
  }
  sum.writeUInt32BE(count, ID_BYTES)
  return createHash('sha256').update(sum).digest().subarray(0, FP_BYTES)
}

function lowerBoundIn(ids: Id[], bound: Id): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compare(ids[mid], bound) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** An immutable sorted set of 32-byte ids with prefix sums for O(1) range fingerprints. */
export class IdSet implements SortedIds {
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
      this.prefix.copyWithin((i + 1) * LIMBS, i * LIMBS, (i + 1) * LIMBS)
      addId(this.prefix, (i + 1) * LIMBS, this.ids[i], 1)
    }
  }

  get size(): number {
    return this.ids.length
  }

  lowerBound(bound: Id | undefined): number {
    return bound === undefined ? this.ids.length : lowerBoundIn(this.ids, bound)
  }

  at(i: number): Id {
    return this.ids[i]
  }

  slice(from: number, to: number): Id[] {
    return this.ids.slice(from, to)
  }

  fingerprint(from: number, to: number): Uint8Array {
    return fingerprintOf(this.prefix, to * LIMBS, this.prefix, from * LIMBS, to - from)
  }
}

/** ids a block of LiveIdSet holds at most before it splits */
const BLOCK = 64

/**
 * A sorted id set kept current as ids come and go, so anti-entropy need not re-read and sort every
 * stored hash each round: sorted blocks of at most BLOCK ids, each with its sum; block prefix
 * counts and sums are rebuilt (O(blocks)) on the first read after a change. An insert or delete
 * costs O(log n + BLOCK); a range fingerprint O(log n + BLOCK). Its fingerprints equal IdSet's over
 * the same ids (tests/state/rbsr.test.ts).
 */
export class LiveIdSet implements SortedIds {
  private blocks: { ids: Id[]; sum: Uint32Array }[] = []
  private count = 0
  /** counts[b], sums[b * LIMBS..]: ids and their sum in blocks [0, b); undefined after a change */
  private counts?: Uint32Array
  private sums?: Uint32Array

  constructor(ids: Iterable<Id> = []) {
    // built in blocks from one sort, not by repeated inserts
    const sorted = new IdSet(ids).ids
    for (let i = 0; i < sorted.length; i += BLOCK / 2) this.blocks.push(this.block(sorted.slice(i, i + BLOCK / 2)))
    this.count = sorted.length
  }

  private block(ids: Id[]): { ids: Id[]; sum: Uint32Array } {
    const sum = new Uint32Array(LIMBS)
    for (const id of ids) addId(sum, 0, id, 1)
    return { ids, sum }
  }

  get size(): number {
    return this.count
  }

  /** the block an id belongs in: the last whose first id <= id (or the first block) */
  private blockOf(id: Id): number {
    let lo = 0
    let hi = this.blocks.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (compare(this.blocks[mid].ids[0], id) <= 0) lo = mid + 1
      else hi = mid
    }
    return Math.max(0, lo - 1)
  }

  /** Adds an id; false when it was there already. */
  add(id: Id): boolean {
    if (id.length !== ID_BYTES) throw new Error(`ids are ${ID_BYTES} bytes, got ${id.length}`)
    if (!this.blocks.length) {
      this.blocks.push(this.block([id]))
      this.count++
      this.counts = this.sums = undefined
      return true
    }
    const b = this.blockOf(id)
    const block = this.blocks[b]
    const i = lowerBoundIn(block.ids, id)
    if (i < block.ids.length && compare(block.ids[i], id) === 0) return false
    block.ids.splice(i, 0, id)
    addId(block.sum, 0, id, 1)
    if (block.ids.length > BLOCK) {
      const half = block.ids.length >> 1
      this.blocks.splice(b, 1, this.block(block.ids.slice(0, half)), this.block(block.ids.slice(half)))
    }
    this.count++
    this.counts = this.sums = undefined
    return true
  }

  /** Removes an id; false when it was not there. */
  delete(id: Id): boolean {
    if (!this.blocks.length) return false
    const b = this.blockOf(id)
    const block = this.blocks[b]
    const i = lowerBoundIn(block.ids, id)
    if (i >= block.ids.length || compare(block.ids[i], id) !== 0) return false
    block.ids.splice(i, 1)
    addId(block.sum, 0, id, -1)
    if (!block.ids.length) this.blocks.splice(b, 1)
    this.count--
    this.counts = this.sums = undefined
    return true
  }

  has(id: Id): boolean {
    if (!this.blocks.length) return false
    const block = this.blocks[this.blockOf(id)]
    const i = lowerBoundIn(block.ids, id)
    return i < block.ids.length && compare(block.ids[i], id) === 0
  }

  private index(): { counts: Uint32Array; sums: Uint32Array } {
    if (!this.counts || !this.sums) {
      const n = this.blocks.length
      const counts = new Uint32Array(n + 1)
      const sums = new Uint32Array((n + 1) * LIMBS)
      for (let b = 0; b < n; b++) {
        counts[b + 1] = counts[b] + this.blocks[b].ids.length
        let carry = 0
        for (let l = 0; l < LIMBS; l++) {
          const s = sums[b * LIMBS + l] + this.blocks[b].sum[l] + carry
          sums[(b + 1) * LIMBS + l] = s >>> 0
          carry = s > 0xffffffff ? 1 : 0
        }
      }
      this.counts = counts
      this.sums = sums
    }
    return { counts: this.counts, sums: this.sums }
  }

  /** the block holding index i (i < size), and i's offset in it */
  private locate(i: number): [number, number] {
    const { counts } = this.index()
    let lo = 0
    let hi = this.blocks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (counts[mid] <= i) lo = mid
      else hi = mid - 1
    }
    return [lo, i - counts[lo]]
  }

  lowerBound(bound: Id | undefined): number {
    if (bound === undefined || !this.blocks.length) return bound === undefined ? this.count : 0
    const b = this.blockOf(bound)
    return this.index().counts[b] + lowerBoundIn(this.blocks[b].ids, bound)
  }

  at(i: number): Id {
    const [b, o] = this.locate(i)
    return this.blocks[b].ids[o]
  }

  slice(from: number, to: number): Id[] {
    const out: Id[] = []
    if (from >= to) return out
    let [b, o] = this.locate(from)
    for (let n = to - from; n > 0 && b < this.blocks.length; b++, o = 0) {
      const part = this.blocks[b].ids.slice(o, o + n)
      out.push(...part)
      n -= part.length
    }
    return out
  }

  /** the sum of ids [0, i) as limbs */
  private sumTo(i: number): Uint32Array {
    const acc = new Uint32Array(LIMBS)
    if (i <= 0 || !this.blocks.length) return acc
    const { sums } = this.index()
    if (i >= this.count) {
      acc.set(sums.subarray(this.blocks.length * LIMBS, (this.blocks.length + 1) * LIMBS))
      return acc
    }
    const [b, o] = this.locate(i)
    const ids = this.blocks[b].ids
    // from whichever end of the block is nearer
    if (o <= ids.length >> 1) {
      acc.set(sums.subarray(b * LIMBS, (b + 1) * LIMBS))
      for (let k = 0; k < o; k++) addId(acc, 0, ids[k], 1)
    } else {
      acc.set(sums.subarray((b + 1) * LIMBS, (b + 2) * LIMBS))
      for (let k = o; k < ids.length; k++) addId(acc, 0, ids[k], -1)
    }
    return acc
  }

  fingerprint(from: number, to: number): Uint8Array {
    return fingerprintOf(this.sumTo(to), 0, this.sumTo(from), 0, to - from)
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
    private readonly set: SortedIds,
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
    if (count <= this.listThreshold) return [{ upper, mode: 'ids', ids: this.set.slice(from, to) }]
    const out: Range[] = []
    const per = Math.ceil(count / this.branching)
    for (let start = from; start < to; start += per) {
      const end = Math.min(to, start + per)
      out.push({ upper: end === to ? upper : this.set.at(end), mode: 'fingerprint', fingerprint: this.set.fingerprint(start, end) })
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
        const mine = this.set.slice(lower, upperIndex)
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
