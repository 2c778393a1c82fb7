import { EventEmitter, on } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { CollectionDeclaration } from '../../../core/plugin.js'
import { stateCollections } from './collections.js'
import { compareTimestamps, HybridClock, type Timestamp } from './hlc.js'
import { heartbeatProblem, heartbeatSigned, type Heartbeat } from './heartbeat.js'
import { Membership, type MemberInfo } from './membership.js'
import { Rules } from './rules.js'
import { SignatureVerifier, type Author } from './identity.js'
import { BAD_SIGNATURE, createOp, OpRejected, verifyOp, wins, type Op, type RejectCode, type VerifiedOp } from './op.js'
import { VerifyPool } from './verify-pool.js'
import { LiveIdSet } from './sync/rbsr.js'

export interface StoreOptions {
  dir: string
  /** operations larger than this (canonical JSON bytes) are rejected */
  maxOpBytes?: number
  /** operations further ahead of the local clock than this are held until due (and never move the clock) */
  maxSkewMs?: number
  /** operations further ahead of the local clock than this are rejected (OP_FUTURE) */
  maxHoldMs?: number
  /** how many early operations may wait at once; more are dropped (anti-entropy brings them again) */
  maxHeldOps?: number
  /** the collections whose writes are accepted (every plugin's declarations); default: the state plugin's */
  collections?: CollectionDeclaration[]
  /** genesis admins; undefined: an open store in which every author counts (tests, tools) */
  admins?: string[]
  /** admins' admissions needed to make a member */
  threshold?: number
  /** this node's address: its own records count for itself while it waits for admission */
  self?: string
  now?: () => number
  /** worker threads that verify signatures of large batches (0: verify on the calling thread) */
  verifyWorkers?: number
  /**
   * tombstones older than this are dropped (expireTombstones), and a store closed for longer than
   * this starts empty to re-sync from its peers; undefined: tombstones are kept (tests, tools)
   */
  tombstoneHorizonMs?: number
}

export interface StateRecord {
  collection: string
  key: string
  value: unknown
  deleted: boolean
  hash: string
  t: Timestamp
  author: string
  /** admission order of the author, for records only members' count (e.g. formnet subnet claims) */
  rank?: number
}

export interface InsertResult {
  /** who sent the operations (a peer id, 'local', 'api:local') */
  source?: string
  accepted: number
  duplicates: number
  rejected: { index: number; code: RejectCode; message: string }[]
  /** valid operations ahead of this node's clock (within max_hold_ms), kept aside until due: not misbehaviour */
  held: number
  /** hashes of the accepted operations, in input order */
  hashes: string[]
  /** accepted operations not stored: another operation on their record already wins (or an expired tombstone) */
  superseded?: number
  /** peers the sender says it sent these operations to as well (handed on to 'ops' listeners) */
  sentTo?: ReadonlySet<string>
}

/** Why a store opened empty: it had been closed for longer than the tombstone horizon. */
export interface Resync {
  lastActive: number
  awayMs: number
  horizonMs: number
  message: string
}

interface StoredRecord {
  hash: string
  t: Timestamp
  author: string
  del?: true
  val?: unknown
  /** the winning operation's entry in `seq` (dropped with it once superseded); absent in stores written before compaction */
  seq?: number
}

const SEP = '\u0000'
const recordKey = (collection: string, key: string) => collection + SEP + key
const seqKey = (n: number) => n.toString(16).padStart(13, '0')

/** Version of the on-disk layout: 2 holds only winning operations (compacted). */
const FORMAT = 2

/**
 * The replicated state: for each (collection, key), the winning signed operation and its record.
 * A last-writer-wins register needs nothing but its winner, so an operation that loses is never
 * stored and one that wins replaces its predecessor: the store holds one operation per live key
 * plus tombstones, and tombstones go after the horizon. Every replica orders operations the same
 * way (wins(): timestamp, then hash), whatever their authors' membership, so dropping losers never
 * makes replicas differ. An operation, its log entry, the record it wins and the removal of the
 * operation it supersedes are one LevelDB batch: a crash never leaves a half-applied write.
 * Opening reads only a few meta keys: nothing is replayed.
 *
 * Sublevels: `ops` hash -> canonical op bytes; `seq` local insertion order -> hash (what dumps
 * read); `records` collection NUL key -> winning record (prefix listing per collection); `meta`
 * format, stored op count, last time the store was active.
 */
export class StateStore {
  readonly clock: HybridClock
  private readonly verifier = new SignatureVerifier()
  private readonly events = new EventEmitter({ captureRejections: false })
  private readonly rejects = new Map<string, Map<RejectCode, number>>()
  private queue: Promise<unknown> = Promise.resolve()
  private nextSeq = 0
  private opCount = 0
  private pool?: VerifyPool
  readonly rules: Rules
  readonly membership: Membership
  private readonly held = new Map<string, { op: Op; source: string; due: number }>()
  private heldTimer?: NodeJS.Timeout
  private heldDropped = 0
  private closed = false
  private tombstonesExpired = 0
  /** set when this store opened empty because it had been away longer than the tombstone horizon */
  resync?: Resync
  /**
   * per node: when this node last heard from it (its clock), by a new node-record operation or a
   * heartbeat; the newest of each it has seen (t, hb: the sender's clock), and how far ahead of
   * this clock the sender's was
   */
  private readonly seen = new Map<string, { t?: Timestamp; hb?: number; at: number; offset?: number }>()
  /** libp2p peer id -> node address, from the peer bindings of node records */
  private readonly peerIds = new Map<string, string>()
  /** every stored operation hash, sorted, for anti-entropy: read once (idSet()), then kept current by apply and expiry */
  private liveIds?: LiveIdSet
  private liveIdsLoad?: Promise<LiveIdSet>

  private constructor(
    private readonly db: Level<string, any>,
    private readonly ops: ReturnType<Level<string, any>['sublevel']>,
    private readonly seq: ReturnType<Level<string, any>['sublevel']>,
    private readonly records: ReturnType<Level<string, any>['sublevel']>,
    private readonly meta: ReturnType<Level<string, any>['sublevel']>,
    private readonly options: Required<Omit<StoreOptions, 'dir' | 'collections' | 'admins' | 'threshold' | 'self' | 'tombstoneHorizonMs'>> & { self?: string; tombstoneHorizonMs?: number },
    collections: CollectionDeclaration[],
    membership: Membership,
  ) {
    this.clock = new HybridClock(options.now, options.maxSkewMs)
    this.rules = new Rules(collections)
    this.membership = membership
    this.events.setMaxListeners(0)
  }

  static async open(options: StoreOptions): Promise<StateStore> {
    await mkdir(options.dir, { recursive: true })
    const db = new Level<string, any>(options.dir, { valueEncoding: 'json' })
    await db.open()
    const store = new StateStore(
      db,
      db.sublevel<string, Buffer>('ops', { valueEncoding: 'buffer' }) as any,
      db.sublevel<string, string>('seq', { valueEncoding: 'utf8' }) as any,
      db.sublevel<string, StoredRecord>('records', { valueEncoding: 'json' }) as any,
      db.sublevel<string, unknown>('meta', { valueEncoding: 'json' }) as any,
      {
        maxOpBytes: options.maxOpBytes ?? 64 * 1024,
        maxSkewMs: options.maxSkewMs ?? 60_000,
        maxHoldMs: Math.max(options.maxHoldMs ?? 15 * 60_000, options.maxSkewMs ?? 60_000),
        maxHeldOps: options.maxHeldOps ?? 10_000,
        now: options.now ?? Date.now,
        verifyWorkers: options.verifyWorkers ?? 0,
        self: options.self,
        tombstoneHorizonMs: options.tombstoneHorizonMs,
      },
      options.collections ?? stateCollections,
      new Membership({ admins: options.admins, threshold: options.threshold }),
    )
    if (options.verifyWorkers) store.pool = new VerifyPool(options.verifyWorkers)
    await store.checkAway()
    for await (const key of store.seq.keys({ reverse: true, limit: 1 })) store.nextSeq = Number.parseInt(key as string, 16) + 1
    if ((await store.meta.get('format')) !== FORMAT) await store.compactAll()
    store.opCount = ((await store.meta.get('ops')) as number | undefined) ?? 0
    // membership and peer bindings are small: held in memory, read once here and kept current by apply
    const at = store.options.now()
    for (const c of ['members', 'nodes']) {
      for await (const [k, v] of store.records.iterator({ gte: recordKey(c, ''), lt: recordKey(c, '\uffff') })) {
        const rec = toRecord(c, (k as string).slice(c.length + 1), v as StoredRecord)
        store.track(rec)
        // a restarted node has seen no heartbeat yet: every known node counts as just seen, so a
        // restart never looks like the whole network went away
        if (c === 'nodes' && !rec.deleted) store.seen.set(rec.key, { t: rec.t, at })
      }
    }
    return store
  }

  /**
   * A store closed for longer than the tombstone horizon may hold records whose deletions every
   * other node has forgotten: syncing them back would resurrect them. It starts empty instead and
   * takes the state from its peers (unless it knows no other node: alone, there is nothing to
   * resurrect, and emptying it would lose the only copy).
   */
  private async checkAway(): Promise<void> {
    const horizon = this.options.tombstoneHorizonMs
    const last = (await this.meta.get('lastActive')) as number | undefined
    const now = this.options.now()
    if (horizon === undefined || last === undefined || now - last <= horizon) return
    let others = false
    for await (const k of this.records.keys({ gte: recordKey('nodes', ''), lt: recordKey('nodes', '\uffff') })) {
      if ((k as string).slice('nodes'.length + 1) !== this.options.self) others = true
      if (others) break
    }
    if (!others) return
    await this.ops.clear()
    await this.seq.clear()
    await this.records.clear()
    await this.meta.batch([
      { type: 'put', key: 'ops', value: 0 },
      { type: 'put', key: 'format', value: FORMAT },
      { type: 'put', key: 'lastActive', value: now },
    ])
    const days = ((now - last) / 86_400_000).toFixed(1)
    this.resync = {
      lastActive: last,
      awayMs: now - last,
      horizonMs: horizon,
      message: `state re-synced from scratch: this node was away ${days} days (since ${new Date(last).toISOString()}), longer than [state] tombstone_horizon_ms (${horizon} ms), so its old records could resurrect deleted ones`,
    }
  }

  /**
   * Brings a store written before compaction to the compacted layout once: every operation that
   * is not the winner of its record goes (with its log entry), and each record learns its entry.
   */
  private async compactAll(): Promise<void> {
    const winners = new Map<string, string>()
    for await (const [k, v] of this.records.iterator()) winners.set((v as StoredRecord).hash, k as string)
    let batch: any[] = []
    let kept = 0
    const flush = async () => {
      if (batch.length) await this.db.batch(batch)
      batch = []
    }
    for await (const [sk, hash] of this.seq.iterator()) {
      const rk = winners.get(hash as string)
      if (rk === undefined) {
        batch.push({ type: 'del', sublevel: this.seq, key: sk }, { type: 'del', sublevel: this.ops, key: hash })
      } else {
        const rec = (await this.records.get(rk)) as StoredRecord
        batch.push({ type: 'put', sublevel: this.records, key: rk, value: { ...rec, seq: Number.parseInt(sk as string, 16) } })
        kept++
      }
      if (batch.length >= 10_000) await flush()
    }
    batch.push({ type: 'put', sublevel: this.meta, key: 'ops', value: kept }, { type: 'put', sublevel: this.meta, key: 'format', value: FORMAT })
    await flush()
  }

  /**
   * Drops tombstones (and their operations) older than the horizon: by then every node has them,
   * or has been away so long that it re-syncs from scratch. Also notes that the store is active.
   */
  async expireTombstones(now = this.options.now()): Promise<number> {
    const run = this.queue.then(async () => {
      const horizon = this.options.tombstoneHorizonMs
      const batch: any[] = [{ type: 'put', sublevel: this.meta, key: 'lastActive', value: now }]
      let dropped = 0
      const gone: string[] = []
      if (horizon !== undefined && !this.closed) {
        for await (const [k, v] of this.records.iterator()) {
          const rec = v as StoredRecord
          if (!rec.del || now - rec.t.ms <= horizon) continue
          batch.push({ type: 'del', sublevel: this.records, key: k }, { type: 'del', sublevel: this.ops, key: rec.hash })
          if (rec.seq !== undefined) batch.push({ type: 'del', sublevel: this.seq, key: seqKey(rec.seq) })
          const [c, key] = (k as string).split(SEP)
          if (c === 'nodes') this.seen.delete(key)
          gone.push(rec.hash)
          dropped++
        }
        batch.push({ type: 'put', sublevel: this.meta, key: 'ops', value: this.opCount - dropped })
      }
      if (this.closed) return 0
      await this.db.batch(batch)
      for (const hash of gone) this.liveIds?.delete(Buffer.from(hash, 'hex'))
      this.opCount -= dropped
      this.tombstonesExpired += dropped
      return dropped
    })
    this.queue = run.catch(() => {})
    return run
  }

  async close(): Promise<void> {
    this.closed = true
    clearTimeout(this.heldTimer)
    await this.queue.catch(() => {})
    await this.meta.put('lastActive', this.options.now()).catch(() => {})
    await this.pool?.close()
    this.events.emit('close')
    await this.db.close()
  }

  /** Writes a value as `author`; resolves once it is durable in the log. */
  async put(author: Author, collection: string, key: string, value: unknown): Promise<StateRecord> {
    if (value === undefined) throw new OpRejected('OP_MALFORMED', 'a value is required (use delete to remove a record)')
    return this.write(author, collection, key, value)
  }

  async delete(author: Author, collection: string, key: string): Promise<StateRecord> {
    return this.write(author, collection, key, undefined)
  }

  private async write(author: Author, collection: string, key: string, value: unknown): Promise<StateRecord> {
    const op = createOp(author, collection, key, value, this.clock.now())
    const result = await this.insert([op], 'local')
    if (result.rejected.length) {
      const r = result.rejected[0]
      throw new OpRejected(r.code, r.message)
    }
    return (await this.getRecord(collection, key))!
  }

  /**
   * Verifies and applies operations from `source` (a peer id, 'local', 'api'). Invalid ones are
   * rejected and counted, never stored; duplicates are ignored. Resolves after the batch is written.
   * `sentTo`: the peers the sender says got these operations too, for replication to leave out.
   */
  async insert(inputs: unknown[], source: string, sentTo?: ReadonlySet<string>): Promise<InsertResult> {
    const result: InsertResult = { source, accepted: 0, duplicates: 0, rejected: [], held: 0, hashes: [], sentTo }
    const now = this.options.now()
    // Signatures are checked after the cheap checks and only for operations this store does not
    // hold yet: a copy (flooding, anti-entropy) is recognised by its hash and costs no signature work.
    const limits = { maxOpBytes: this.options.maxOpBytes, maxSkewMs: this.options.maxSkewMs, maxHoldMs: this.options.maxHoldMs, now, rules: this.rules, deferSignature: true }
    let verified: { index: number; v: VerifiedOp }[] = []
    inputs.forEach((input, index) => {
      try {
        verified.push({ index, v: verifyOp(input, this.verifier, limits) })
      } catch (error) {
        if (!(error instanceof OpRejected)) throw error
        this.reject(result, source, index, error)
      }
    })
    if (this.closed) return result
    if (verified.length) {
      const known = await this.storedOps(verified.map((x) => x.v.hash))
      const copies = known.filter((k) => k !== undefined).length
      if (copies) {
        result.duplicates += copies
        verified = verified.filter((_, i) => known[i] === undefined)
      }
    }
    if (this.pool && verified.length >= 16) {
      const ok = await this.pool.verify(verified.map(({ v }) => ({ key: v.op.by.key, message: v.message, signature: v.signature })))
      verified = verified.filter((x, i) => ok[i] || (this.reject(result, source, x.index, BAD_SIGNATURE()), false))
    } else {
      verified = verified.filter((x) => this.verifier.signature(x.v.op.by.key, x.v.message, x.v.signature) || (this.reject(result, source, x.index, BAD_SIGNATURE()), false))
    }
    for (const { v } of verified) this.arrived(v, now, source)
    // An operation a little ahead of this clock is an honest node with a faster clock (or this one
    // slow): kept aside and applied when due, not stored early (it would move this clock) nor rejected.
    const early = verified.filter((x) => x.v.early)
    if (early.length) {
      verified = verified.filter((x) => !x.v.early)
      for (const { v } of early) this.hold(v, source)
      result.held = early.length
    }
    // Applies are serialized so that reading the current record and writing the winner is atomic.
    const run = this.queue.then(() => this.apply(verified.map((x) => x.v), result))
    this.queue = run.catch(() => {})
    return run
  }

  private hold(v: VerifiedOp, source: string): void {
    if (this.held.has(v.hash)) return
    if (this.held.size >= this.options.maxHeldOps) {
      this.heldDropped++
      return
    }
    this.held.set(v.hash, { op: v.op, source, due: v.op.t.ms - this.options.maxSkewMs })
    this.scheduleHeld()
  }

  private scheduleHeld(): void {
    clearTimeout(this.heldTimer)
    if (this.closed || this.held.size === 0) return
    let due = Infinity
    for (const h of this.held.values()) due = Math.min(due, h.due)
    this.heldTimer = setTimeout(() => void this.releaseHeld().catch(() => {}), Math.min(Math.max(0, due - this.options.now()) + 5, 60_000))
    this.heldTimer.unref()
  }

  /** Applies the held operations that are due now (a timer calls it; tests with a fixed clock may too). */
  async releaseHeld(): Promise<number> {
    const now = this.options.now()
    const bySource = new Map<string, Op[]>()
    for (const [hash, h] of this.held) {
      if (h.due > now) continue
      this.held.delete(hash)
      bySource.set(h.source, [...(bySource.get(h.source) ?? []), h.op])
    }
    let applied = 0
    for (const [source, ops] of bySource) if (!this.closed) applied += (await this.insert(ops, source)).accepted
    this.scheduleHeld()
    return applied
  }

  /** Notes when this node first saw each node's newest record: liveness is what this node has seen. */
  private arrived(v: VerifiedOp, now: number, source: string): void {
    if (v.op.c !== 'nodes') return
    const prev = this.seen.get(v.op.k)
    if (prev?.t && compareTimestamps(v.op.t, prev.t) <= 0) return
    const remote = source !== 'local' && v.op.k !== this.options.self
    // a new record (a restart rewrites it) starts the node's heartbeats afresh: before a restart they
    // may have run ahead of its clock (an observed timestamp moves it up to max_clock_skew_ms)
    this.seen.set(v.op.k, { t: v.op.t, at: now, offset: remote ? v.op.t.ms - now : undefined })
  }

  /**
   * Takes a heartbeat (from a peer, or this node's own with source 'local'): 'fresh' when it is a
   * member's newer one (it now counts as just heard from; worth forwarding), 'stale' when not newer
   * than what this node last heard from it (a copy or a replay), 'ignored' from a non-member,
   * or why it is invalid. Cheap checks come first: the signature is checked only for a fresh one.
   */
  heartbeat(input: unknown, source: string): 'fresh' | 'stale' | 'ignored' | { invalid: string } {
    const problem = heartbeatProblem(input)
    if (problem) return { invalid: problem }
    const h = input as Heartbeat
    const address = h.by.address
    if (!this.counts('nodes', address, address)) return 'ignored'
    const now = this.options.now()
    const prev = this.seen.get(address)
    // Not newer than the last heartbeat or node record from this node: a copy, or a replay. (A node
    // whose clock is behind still counts; a replay can make a dead node look alive only once after
    // this node restarts, and then only if its record is older than the heartbeat.)
    if ((prev?.hb !== undefined && h.ms <= prev.hb) || (prev?.t !== undefined && h.ms < prev.t.ms)) return 'stale'
    if (h.ms > now + this.options.maxHoldMs) return { invalid: `heartbeat from ${new Date(h.ms).toISOString()}, more than ${this.options.maxHoldMs} ms ahead of this node's clock` }
    if (!heartbeatSigned(h, this.verifier)) return { invalid: 'the heartbeat signature does not match' }
    const remote = source !== 'local' && address !== this.options.self
    this.seen.set(address, { ...prev, hb: h.ms, at: now, offset: remote ? h.ms - now : prev?.offset })
    this.events.emit('heartbeat', h, source)
    return 'fresh'
  }

  /** Every fresh heartbeat (this node's own included), with where it came from; for forwarding. */
  onHeartbeat(listener: (h: Heartbeat, source: string) => void): () => void {
    this.events.on('heartbeat', listener)
    return () => this.events.off('heartbeat', listener)
  }

  /** Keeps the in-memory membership and peer bindings equal to the stored records. */
  private track(rec: StateRecord): void {
    if (rec.collection === 'members') this.membership.update(rec.key, rec.author, rec.t, rec.deleted ? undefined : rec.value)
    if (rec.collection === 'nodes') {
      for (const [peer, address] of this.peerIds) if (address === rec.key) this.peerIds.delete(peer)
      const peerId = (rec.value as { peerId?: unknown } | null)?.peerId
      if (!rec.deleted && typeof peerId === 'string') this.peerIds.set(peerId, rec.key)
    }
  }

  /** Whether a stored record counts: members' records only while their author is a member (or this node itself). */
  counts(collection: string, key: string, author: string): boolean {
    const writer = this.rules.writerOf(collection, key)
    if (writer === 'member') return author === this.options.self || this.membership.isMember(author)
    if (writer === 'admin') return this.membership.isAdmin(author)
    return true
  }

  private view(collection: string, key: string, rec: StoredRecord): StateRecord | undefined {
    if (!this.counts(collection, key, rec.author)) return undefined
    const out = toRecord(collection, key, rec)
    if (this.rules.writerOf(collection, key) === 'member') out.rank = this.membership.rank(rec.author) ?? Number.MAX_SAFE_INTEGER
    return out
  }

  /** Is this address an admitted member (or a genesis admin)? */
  isMember(address: string): boolean {
    return this.membership.isMember(address)
  }

  /** The member address a libp2p peer id is bound to (through its node record), if it is a member. */
  memberOfPeer(peerId: string): string | undefined {
    const address = this.peerIds.get(peerId)
    return address !== undefined && this.membership.isMember(address) ? address : undefined
  }

  members(): MemberInfo[] {
    return [...this.membership.members().values()]
  }

  /**
   * node address -> when this node last received a new record or a fresh heartbeat from it (by
   * this node's clock), for the nodes that count. The value in the record plays no part: no field
   * can make a node look alive longer.
   */
  liveness(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [address, s] of this.seen) if (this.counts('nodes', address, address)) out.set(address, s.at)
    return out
  }

  /**
   * How this node's clock compares with its peers', from the timestamps of their newest node
   * records when they arrived (delivery delay only makes a peer look further behind): the median
   * over peers heard from in the last `windowMs`, positive when the peers are ahead.
   */
  clockReport(windowMs = 5 * 60_000): { peers: number; offsetMs?: number; offsets: Record<string, number>; held: number; heldDropped: number } {
    const now = this.options.now()
    const recent = [...this.seen].filter(([, s]) => s.offset !== undefined && now - s.at <= windowMs)
    const sorted = recent.map(([, s]) => s.offset!).sort((a, b) => a - b)
    const offsetMs = sorted.length ? sorted[Math.floor(sorted.length / 2)] : undefined
    return { peers: sorted.length, offsetMs, offsets: Object.fromEntries(recent.map(([a, s]) => [a, s.offset!])), held: this.held.size, heldDropped: this.heldDropped }
  }

  private reject(result: InsertResult, source: string, index: number, error: OpRejected): void {
    result.rejected.push({ index, code: error.code, message: error.message })
    const counts = this.rejects.get(source) ?? new Map<RejectCode, number>()
    counts.set(error.code, (counts.get(error.code) ?? 0) + 1)
    this.rejects.set(source, counts)
  }

  /**
   * Which of these operations are stored (a defined entry each): from the reconciliation set when it
   * is loaded (it holds exactly the stored hashes), which spares a store read per batch, twice.
   */
  private async storedOps(hashes: string[]): Promise<unknown[]> {
    const ids = this.liveIds
    if (!ids) return this.ops.getMany(hashes)
    return hashes.map((h) => (ids.has(Buffer.from(h, 'hex')) ? true : undefined))
  }

  private async apply(ops: VerifiedOp[], result: InsertResult): Promise<InsertResult> {
    if (this.closed) return result
    const unique = [...new Map(ops.map((o) => [o.hash, o])).values()]
    result.duplicates += ops.length - unique.length
    if (unique.length === 0) return result
    const known = await this.storedOps(unique.map((o) => o.hash))
    const fresh = unique.filter((_, i) => known[i] === undefined)
    result.duplicates += unique.length - fresh.length
    if (fresh.length === 0) return result

    // Per record, only the best of this batch can be stored, and only if it beats the stored winner.
    const best = new Map<string, VerifiedOp>()
    for (const o of fresh) {
      this.clock.observe(o.op.t)
      const rk = recordKey(o.op.c, o.op.k)
      const b = best.get(rk)
      if (!b || wins({ t: o.op.t, hash: o.hash }, { t: b.op.t, hash: b.hash })) best.set(rk, o)
    }
    const rks = [...best.keys()]
    const current = await this.records.getMany(rks)
    const horizon = this.options.tombstoneHorizonMs
    const now = this.options.now()
    const batch: any[] = []
    const changes: StateRecord[] = []
    const stored: VerifiedOp[] = []
    let removed = 0
    const superseded: string[] = []
    rks.forEach((rk, i) => {
      const { op, hash, bytes } = best.get(rk)!
      const cur = current[i] as StoredRecord | undefined
      if (cur && !wins({ t: op.t, hash }, cur)) return
      // a tombstone past the horizon is one every node has dropped: storing it again would only bring it back around
      if (!cur && op.del && horizon !== undefined && now - op.t.ms > horizon) return
      const seq = this.nextSeq++
      batch.push({ type: 'put', sublevel: this.ops, key: hash, value: bytes })
      batch.push({ type: 'put', sublevel: this.seq, key: seqKey(seq), value: hash })
      if (cur) {
        batch.push({ type: 'del', sublevel: this.ops, key: cur.hash })
        superseded.push(cur.hash)
        if (cur.seq !== undefined) batch.push({ type: 'del', sublevel: this.seq, key: seqKey(cur.seq) })
        removed++
      }
      const rec: StoredRecord = op.del ? { hash, t: op.t, author: op.by.address, del: true, seq } : { hash, t: op.t, author: op.by.address, val: op.val, seq }
      batch.push({ type: 'put', sublevel: this.records, key: rk, value: rec })
      changes.push(toRecord(op.c, op.k, rec))
      stored.push(best.get(rk)!)
    })
    result.accepted += fresh.length
    result.hashes.push(...fresh.map((o) => o.hash))
    result.superseded = (result.superseded ?? 0) + fresh.length - stored.length
    if (stored.length === 0) return result
    batch.push({ type: 'put', sublevel: this.meta, key: 'ops', value: this.opCount + stored.length - removed })
    try {
      await this.db.batch(batch)
    } catch (error) {
      this.nextSeq -= stored.length
      throw error
    }
    this.opCount += stored.length - removed
    if (this.liveIds) {
      for (const hash of superseded) this.liveIds.delete(Buffer.from(hash, 'hex'))
      for (const o of stored) this.liveIds.add(Buffer.from(o.hash, 'hex'))
    }
    for (const c of changes) this.track(c)
    if (changes.some((c) => c.collection === 'members')) this.events.emit('membership')
    this.events.emit('ops', stored.map((o) => ({ hash: o.hash, op: o.op })), result.source, result.sentTo)
    // per collection: a watcher hears only its collection's changes (a bulk write to one collection
    // cost every watcher of every other collection an event each)
    for (const c of changes) this.events.emit(`change:${c.collection}`, c)
    return result
  }
  async getRecord(collection: string, key: string): Promise<StateRecord | undefined> {
    const rec = (await this.records.get(recordKey(collection, key))) as StoredRecord | undefined
    return rec ? this.view(collection, key, rec) : undefined
  }

  /** The live value of a record; undefined when absent or deleted. */
  async get(collection: string, key: string): Promise<StateRecord | undefined> {
    const rec = await this.getRecord(collection, key)
    return rec && !rec.deleted ? rec : undefined
  }

  /** Records of a collection in key order. `cursor` is the last key of the previous page. */
  async list(collection: string, options: { prefix?: string; limit?: number; cursor?: string; includeDeleted?: boolean } = {}): Promise<{ records: StateRecord[]; cursor?: string }> {
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000)
    const base = recordKey(collection, options.prefix ?? '')
    const range = { gt: options.cursor !== undefined ? recordKey(collection, options.cursor) : undefined, gte: options.cursor === undefined ? base : undefined, lt: base + '\uffff' }
    const records: StateRecord[] = []
    for await (const [k, v] of this.records.iterator({ ...clean(range) })) {
      const key = (k as string).slice(collection.length + 1)
      const rec = this.view(collection, key, v as StoredRecord)
      if (!rec || (rec.deleted && !options.includeDeleted)) continue
      records.push(rec)
      if (records.length >= limit) return { records, cursor: key }
    }
    return { records }
  }

  /** Every live record of a collection (and key prefix), for controllers that reconcile against all of them. */
  async all(collection: string, prefix = ''): Promise<StateRecord[]> {
    const out: StateRecord[] = []
    let cursor: string | undefined
    do {
      const page = await this.list(collection, { prefix, cursor, limit: 10_000 })
      out.push(...page.records)
      cursor = page.cursor
    } while (cursor !== undefined)
    return out
  }

  /** Calls `listener` when the members change (an admission or revocation record won). */
  onMembership(listener: () => void): () => void {
    this.events.on('membership', listener)
    return () => this.events.off('membership', listener)
  }

  /** Every newly stored operation (not duplicates), with the source it came from; for replication. */
  onOps(listener: (ops: { hash: string; op: Op }[], source: string | undefined, sentTo: ReadonlySet<string> | undefined) => void): () => void {
    this.events.on('ops', listener)
    return () => this.events.off('ops', listener)
  }

  /** Changes to records of a collection (and key prefix) from now on, until `signal` aborts or the store closes. */
  async *watch(collection: string, prefix = '', signal?: AbortSignal): AsyncGenerator<StateRecord> {
    const closed = new AbortController()
    const onClose = () => closed.abort()
    this.events.once('close', onClose)
    const stop = signal ? AbortSignal.any([signal, closed.signal]) : closed.signal
    try {
      for await (const [change] of on(this.events, `change:${collection}`, { signal: stop })) {
        const c = change as StateRecord
        if (c.collection === collection && c.key.startsWith(prefix) && this.counts(c.collection, c.key, c.author)) yield c
      }
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error
    } finally {
      this.events.off('close', onClose)
    }
  }

  /** Operations in local insertion order from `seq` on, for replication and dumps. */
  async opsSince(seq: number, limit = 1000): Promise<{ ops: { seq: number; hash: string; op: Op }[]; next: number }> {
    const out: { seq: number; hash: string; op: Op }[] = []
    let next = seq
    const hashes: [number, string][] = []
    for await (const [k, h] of this.seq.iterator({ gte: seqKey(seq), limit })) hashes.push([Number.parseInt(k as string, 16), h as string])
    const bytes = await this.ops.getMany(hashes.map(([, h]) => h))
    hashes.forEach(([s, hash], i) => {
      out.push({ seq: s, hash, op: JSON.parse((bytes[i] as Buffer).toString('utf8')) as Op })
      next = s + 1
    })
    return { ops: out, next }
  }

  async getOps(hashes: string[]): Promise<(Op | undefined)[]> {
    const bytes = await this.ops.getMany(hashes)
    return bytes.map((b) => (b ? (JSON.parse((b as Buffer).toString('utf8')) as Op) : undefined))
  }

  /**
   * Every stored operation hash as a sorted set kept current as operations are stored, superseded
   * and expired: read from disk once, so an anti-entropy round does not re-read and sort them all.
   * The caller must not change it.
   */
  idSet(): Promise<LiveIdSet> {
    if (this.liveIdsLoad) return this.liveIdsLoad
    // read in the apply queue, so no batch lands between the read and the first update
    const load = this.queue.then(async () => (this.liveIds = new LiveIdSet(await this.hashes())))
    this.queue = load.catch(() => {})
    this.liveIdsLoad = load
    load.catch(() => (this.liveIdsLoad = undefined))
    return load
  }

  /** Every operation hash, sorted (the input of range-based reconciliation). */
  async hashes(): Promise<Buffer[]> {
    const out: Buffer[] = []
    for await (const k of this.ops.keys()) out.push(Buffer.from(k as string, 'hex'))
    return out
  }

  /**
   * What the store holds, read from disk: live records, tombstones, stored operations and their
   * bytes (operations only; LevelDB's own overhead is not counted). Reads every record: for
   * `form state info`, not for hot paths.
   */
  async inventory(): Promise<{ records: number; tombstones: number; ops: number; opBytes: number; tombstonesExpired: number; horizonMs?: number; resync?: Resync }> {
    let records = 0
    let tombstones = 0
    for await (const v of this.records.values()) {
      if ((v as StoredRecord).del) tombstones++
      else records++
    }
    let ops = 0
    let opBytes = 0
    for await (const v of this.ops.values()) {
      ops++
      opBytes += (v as Buffer).length
    }
    return { records, tombstones, ops, opBytes, tombstonesExpired: this.tombstonesExpired, horizonMs: this.options.tombstoneHorizonMs, resync: this.resync }
  }

  stats(): { ops: number; nextSeq: number; rejected: Record<string, Record<string, number>> } {
    return {
      ops: this.opCount,
      nextSeq: this.nextSeq,
      rejected: Object.fromEntries([...this.rejects].map(([source, m]) => [source, Object.fromEntries(m)])),
    }
  }
}

function clean<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

function toRecord(collection: string, key: string, rec: StoredRecord): StateRecord {
  return { collection, key, value: rec.del ? null : rec.val, deleted: Boolean(rec.del), hash: rec.hash, t: rec.t, author: rec.author }
}
