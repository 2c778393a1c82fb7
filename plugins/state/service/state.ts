import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { FormError } from '../../../core/errors.js'
import { ApiStream } from '../../../core/daemon/router.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import { createHeartbeat } from '../lib/heartbeat.js'
import { loadOrCreateNodeKeys } from '../lib/node-keys.js'
import { StateStore, type StateRecord } from '../lib/store.js'
import type { StateConfig } from '../index.js'
import { ADDRESS } from '../../../core/patterns.js'

/**
 * What other services get from ctx.use('state'): reads, watches and this node's own writes, not the
 * store itself (its clock, membership and sync are the state plugin's business).
 */
export interface StateHandle {
  /** this node's address in state */
  address: string
  /** writes as this node */
  put(collection: string, key: string, value: unknown): Promise<StateRecord>
  delete(collection: string, key: string): Promise<StateRecord>
  /** the live record of a key (undefined when deleted) */
  get(collection: string, key: string): Promise<StateRecord | undefined>
  /** the record of a key, deleted ones included (their tombstone) */
  getRecord(collection: string, key: string): Promise<StateRecord | undefined>
  /** the live records of a collection, under `prefix` */
  all(collection: string, prefix?: string): Promise<StateRecord[]>
  /** the changes of a collection under `prefix` from now on, until `signal` aborts (the unsubscribe) */
  watch(collection: string, prefix: string, signal: AbortSignal): AsyncGenerator<StateRecord>
  /** when each member node was last heard from, by this node's clock (ms): a new map each call */
  liveness(): Map<string, number>
  /** merges fields into this node's record in `nodes` (e.g. its peer id, formnet endpoint, capacity) */
  updateNodeRecord(fields: Record<string, unknown>): Promise<void>
}

declare module '../../../core/plugin.js' {
  interface ServiceHandles {
    state: StateHandle
  }
}

// The store behind a handle, for the state plugin's own services (sync): other plugins cannot import this file.
const stores = new WeakMap<StateHandle, StateStore>()
export function storeOf(handle: StateHandle): StateStore {
  const store = stores.get(handle)
  if (!store) throw new Error('storeOf: not a handle of the state service')
  return store
}

export async function startStateService(ctx: ServiceContext<StateConfig, never>): Promise<RunningService<StateHandle>> {
  const config = ctx.config
  const cores = availableParallelism()
  const verifyWorkers = config.verify_workers === 'auto' ? (cores > 1 ? cores : 0) : config.verify_workers
  const { author, created } = await loadOrCreateNodeKeys(join(ctx.paths.dataDir, 'keys', 'node.json'))
  ctx.log.info(created ? 'created a new node identity' : 'loaded the node identity', { address: author.address })
  // With no admins configured this node is a devnet of its own: its own genesis admin.
  const admins = config.admins.length ? config.admins.map((a) => a.toLowerCase()) : [author.address]
  const store = await StateStore.open({
    dir: join(ctx.paths.dataDir, 'state'),
    maxOpBytes: config.max_op_bytes,
    maxSkewMs: config.max_clock_skew_ms,
    maxHoldMs: config.max_hold_ms,
    maxHeldOps: config.max_held_ops,
    verifyWorkers,
    collections: ctx.collections,
    admins,
    threshold: config.admission_threshold,
    self: author.address,
    tombstoneHorizonMs: config.tombstone_horizon_ms,
  })
  if (store.resync) ctx.log.warn(store.resync.message, { awayMs: store.resync.awayMs, horizonMs: store.resync.horizonMs })
  // tombstones past the horizon go; the sweep also marks the store active (what tells a long absence apart)
  const sweep = setInterval(
    () =>
      void store.expireTombstones().then(
        (n) => {
          ctx.health.recovered('tombstone sweep')
          if (n) ctx.log.info('dropped tombstones past the horizon', { dropped: n })
        },
        (error: Error) => ctx.health.degraded('tombstone sweep', `tombstone sweep failed: ${error.message}`),
      ),
    Math.min(Math.max(Math.floor(config.tombstone_horizon_ms / 4), 1000), 3_600_000),
  )
  sweep.unref()
  const membershipStatus = () => membershipOf(store, author.address)
  let lastStatus = ''
  const reportMembership = () => {
    const m = membershipStatus()
    if (m.message === lastStatus) return
    lastStatus = m.message
    if (m.member) ctx.log.info(m.message, { address: author.address })
    else ctx.log.warn(m.message, { address: author.address, admins })
  }
  reportMembership()
  const stopMembership = store.onMembership(reportMembership)
  // logged when the verdict changes, or the offset moves by more than half the allowed skew
  let lastClock: { ok: boolean; offsetMs: number } | undefined
  const toldPeers = new Set<string>()
  const reportClock = () => {
    const c = clockStatus(store, config.max_clock_skew_ms)
    for (const [peer, offset] of Object.entries(c.skewedPeers)) {
      if (toldPeers.has(peer)) continue
      toldPeers.add(peer)
      ctx.log.warn(`the clock of node ${peer} is about ${Math.round(Math.abs(offset) / 1000)} s ${offset > 0 ? 'ahead of' : 'behind'} this node's`, { peer, offsetMs: offset })
    }
    for (const peer of toldPeers) if (!(peer in c.skewedPeers)) toldPeers.delete(peer)
    if (c.offsetMs === undefined) return
    if (lastClock && lastClock.ok === c.ok && Math.abs(lastClock.offsetMs - c.offsetMs) <= config.max_clock_skew_ms / 2) return
    lastClock = { ok: c.ok, offsetMs: c.offsetMs }
    if (c.ok) ctx.log.info(c.message, { peers: c.peers })
    else ctx.log.warn(c.message, { peers: c.peers, offsetMs: c.offsetMs, held: c.held })
  }

  // what the node offers (capacity) is the hypervisor manager's to publish, through updateNodeRecord
  let nodeFields: Record<string, unknown> = { address: author.address, version: ctx.version, startedAt: Date.now() }
  // One writer for the node record, so a write never overwrites fresher fields with stale ones. The
  // durable record changes only when its content does (addresses, capacity, peer id): liveness
  // travels in heartbeats, which are never stored (a record per beat grew every node's log forever).
  let writing = Promise.resolve()
  let written = ''
  const writeNodeRecord = () => {
    writing = writing.then(async () => {
      const content = JSON.stringify(nodeFields)
      if (content === written) return
      await store.put(author, 'nodes', author.address, { ...nodeFields, heartbeat: Date.now() })
      written = content
    })
    return writing
  }
  await writeNodeRecord()
  // stamped by the store's clock, like the node record (a heartbeat is never older than the record it
  // follows), and always later than the last one: receivers drop any heartbeat not newer than the last
  let lastBeat = 0
  const beat = () => store.heartbeat(createHeartbeat(author, (lastBeat = Math.max(store.clock.now().ms, lastBeat + 1))), 'local')
  beat()
  const timer = setInterval(() => {
    beat()
    reportClock()
  }, config.heartbeat_interval_ms)
  timer.unref()

  const handle: StateHandle = {
    address: author.address,
    put: (c, k, v) => store.put(author, c, k, v),
    delete: (c, k) => store.delete(author, c, k),
    get: (c, k) => store.get(c, k),
    getRecord: (c, k) => store.getRecord(c, k),
    all: (c, prefix) => store.all(c, prefix),
    watch: (c, prefix, signal) => store.watch(c, prefix, signal),
    liveness: () => store.liveness(),
    updateNodeRecord: async (fields) => {
      nodeFields = { ...nodeFields, ...fields }
      await writeNodeRecord()
    },
  }
  stores.set(handle, store)

  const { AuthorQuota } = await import('../lib/quota.js')
  const { insertGuarded } = await import('../lib/sync/guarded-insert.js')
  const quota = new AuthorQuota({ opsPerMinute: config.quota_ops_per_minute, bytesPerMinute: config.quota_bytes_per_minute })
  const api = ctx.api
  api.get('/records/:collection', async (req) => {
    const limit = req.query.get('limit')
    return store.list(req.params.collection, {
      prefix: req.query.get('prefix') ?? undefined,
      cursor: req.query.get('cursor') ?? undefined,
      limit: limit ? Number(limit) : undefined,
      includeDeleted: req.query.get('deleted') === 'true',
    })
  })
  api.get('/records/:collection/*key', async (req) => {
    const rec = await store.getRecord(req.params.collection, req.params.key)
    if (!rec || (rec.deleted && req.query.get('deleted') !== 'true')) {
      throw new FormError('STATE_NOT_FOUND', `no record ${req.params.collection}/${req.params.key}`, { httpStatus: 404, hint: `list what exists with \`form state list ${req.params.collection}\`` })
    }
    return rec
  })
  // Every operation carries its author's signature and is verified by the store, and inserting one
  // twice is a no-op, so submitting ops needs no request signature of its own.
  api.post(
    '/ops',
    async (req) => {
      const body = req.json<{ ops?: unknown }>()
      if (!body || !Array.isArray(body.ops)) throw new FormError('STATE_BAD_REQUEST', 'expected a JSON body {"ops": [...]}', { httpStatus: 400 })
      // the operator's own socket is not metered; a stranger's wallet is
      if (!req.local) quota.charge(body.ops)
      return insertGuarded(store, body.ops, req.local ? 'api:local' : 'api:remote')
    },
    { auth: 'open', maxBody: config.max_api_batch_bytes },
  )
  // ?snapshot=1 first sends the records as they are, then {"synced": true}, then the changes: what a
  // follower needs to keep a current copy without polling (see lib/follow.ts)
  api.get('/watch/:collection', (req) => {
    const { collection } = req.params
    const prefix = req.query.get('prefix') ?? ''
    const changes = store.watch(collection, prefix, req.signal)
    return new ApiStream(req.query.get('snapshot') === '1' ? snapshotThenChanges(store, collection, prefix, changes) : changes)
  })
  api.get('/dump', () =>
    new ApiStream(
      (async function* () {
        for (let seq = 0; ; ) {
          const page = await store.opsSince(seq, 1000)
          if (page.ops.length === 0) return
          yield* page.ops
          seq = page.next
        }
      })(),
    ),
  )
  api.get('/info', async () => ({ address: author.address, ...store.stats(), storage: await store.inventory(), membership: membershipStatus(), clock: clockStatus(store, config.max_clock_skew_ms) }))
  api.get('/members', () => ({ self: author.address, admins, threshold: config.admission_threshold, ...membershipStatus(), members: store.members() }))
  // Liveness as this node has seen it (arrival times by its own clock), for the CLI's placement;
  // with ?window=<ms>, also which members this node judges alive (heard from within it, by its clock).
  api.get('/liveness', (req) => {
    const now = Date.now()
    const seen = store.liveness()
    const raw = req.query.get('window')
    const windowMs = raw === null ? undefined : Number(raw)
    if (windowMs !== undefined && !(Number.isInteger(windowMs) && windowMs > 0)) {
      throw new FormError('STATE_BAD_REQUEST', `window must be a whole number of milliseconds above 0, not ${JSON.stringify(raw)}`, { httpStatus: 400 })
    }
    const alive = windowMs === undefined ? undefined : [...seen].filter(([n, at]) => n === author.address || now - at <= windowMs).map(([n]) => n).sort()
    return { now, self: author.address, seen: Object.fromEntries(seen), ...(alive ? { windowMs, alive } : {}) }
  })
  // Admission signed by this node's own key, when this node is an admin (a devnet's genesis node).
  api.post(
    '/members',
    async (req) => {
      const body = req.json<{ address?: unknown; status?: unknown }>()
      const address = typeof body?.address === 'string' ? body.address.toLowerCase() : ''
      if (!ADDRESS.test(address) || (body.status !== 'admitted' && body.status !== 'revoked')) {
        throw new FormError('STATE_BAD_REQUEST', 'expected {"address": "0x<40 hex>", "status": "admitted" | "revoked"}', { httpStatus: 400 })
      }
      if (!admins.includes(author.address)) {
        throw new FormError('NOT_AN_ADMIN', `this node (${author.address}) is not an admin of the network; the admins are ${admins.join(', ')}`, {
          httpStatus: 403,
          hint: 'run the command on an admin\'s node, or sign with an admin wallet: `form node admit --wallet ADDRESS`',
        })
      }
      await store.put(author, 'members', `${address}/${author.address}`, { status: body.status })
      return { address, status: body.status, by: author.address, member: store.isMember(address) }
    },
    { auth: 'local' },
  )

  return {
    handle,
    audience: author.address,
    info: () => {
      const m = membershipStatus()
      const c = clockStatus(store, config.max_clock_skew_ms)
      return { address: author.address, ops: store.stats().ops, resynced: store.resync?.message ?? null, member: m.member, membership: m.message, clock: c.message, clockOffsetMs: c.offsetMs ?? null, quotaRefused: quota.refused }
    },
    stop: async () => {
      clearInterval(timer)
      clearInterval(sweep)
      stopMembership()
      await writing.catch(() => {})
      await store.close()
    },
  }
}

/** Whether this node is a member, in words an operator can act on. */
export function membershipOf(store: StateStore, self: string): { member: boolean; rank?: number; message: string } {
  const rank = store.membership.rank(self)
  if (rank !== undefined) return { member: true, rank, message: `member of the network (admission #${rank + 1})` }
  return {
    member: false,
    message: `waiting for admission: on an admin's node run \`form node admit ${self}\`; until then this node's records (heartbeat, subnet claim, builds, instances) count on no other node`,
  }
}

/** How this node's clock compares with its peers' (see StateStore.clockReport). */
export function clockStatus(store: StateStore, maxSkewMs: number): { ok: boolean; peers: number; offsetMs?: number; held: number; skewedPeers: Record<string, number>; message: string } {
  const report = store.clockReport()
  // peers whose clocks are off from this one (positive: ahead), so an operator can tell them
  const skewedPeers = Object.fromEntries(Object.entries(report.offsets).filter(([, o]) => Math.abs(o) > maxSkewMs / 2))
  const { offsets: _offsets, ...rest } = report
  const r = { ...rest, skewedPeers }
  if (r.offsetMs === undefined) return { ok: true, ...r, message: 'clock: no peer heard from yet' }
  const s = Math.round(Math.abs(r.offsetMs) / 1000)
  // half the allowed skew: a warning before operations start being held
  if (Math.abs(r.offsetMs) <= maxSkewMs / 2) return { ok: true, ...r, message: `clock: within ${s} s of ${r.peers} peer(s)` }
  const way = r.offsetMs > 0 ? 'behind' : 'ahead of'
  return {
    ok: false,
    ...r,
    message: `clock: this node's clock is about ${s} s ${way} its ${r.peers} peer(s); operations more than ${Math.round(maxSkewMs / 1000)} s ahead are held until due (${r.held} held now). Fix the clock (NTP: timedatectl set-ntp true)`,
  }
}

/**
 * The records of a collection, a marker, then its changes. The watch listens before the first page
 * is read, so a change made while the pages go out is not missed (it may arrive twice, which a
 * follower keyed by record key absorbs). Pages keep a large collection out of memory.
 */
async function* snapshotThenChanges(store: StateStore, collection: string, prefix: string, changes: AsyncGenerator<StateRecord>): AsyncGenerator<StateRecord | { synced: true }> {
  const first = changes.next()
  let cursor: string | undefined
  do {
    const page = await store.list(collection, { prefix, cursor, limit: 1000 })
    yield* page.records
    cursor = page.cursor
  } while (cursor !== undefined)
  yield { synced: true }
  const next = await first
  if (next.done) return
  yield next.value
  yield* changes
}
