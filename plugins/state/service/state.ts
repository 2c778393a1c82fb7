import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { FormError } from '../../../core/errors.js'
import { ApiStream } from '../../../core/daemon/router.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { Author } from '../lib/identity.js'
import { loadOrCreateNodeKeys } from '../lib/node-keys.js'
import { StateStore, type StateRecord } from '../lib/store.js'
import type { StateConfig } from '../index.js'

/** What other services get from ctx.use('state'). */
export interface StateHandle {
  store: StateStore
  /** this node's identity in state */
  author: Author
  address: string
  put(collection: string, key: string, value: unknown): Promise<StateRecord>
  delete(collection: string, key: string): Promise<StateRecord>
  get(collection: string, key: string): Promise<StateRecord | undefined>
  /** merges fields into this node's record in `nodes` (e.g. its peer id or formnet endpoint) */
  updateNodeRecord(fields: Record<string, unknown>): Promise<void>
}

export async function startStateService(ctx: ServiceContext): Promise<RunningService> {
  const config = ctx.config as StateConfig
  const cores = availableParallelism()
  const verifyWorkers = config.verify_workers === 'auto' ? (cores > 1 ? cores : 0) : config.verify_workers
  const store = await StateStore.open({ dir: join(ctx.paths.dataDir, 'state'), maxOpBytes: config.max_op_bytes, maxSkewMs: config.max_clock_skew_ms, verifyWorkers })
  const { author, created } = await loadOrCreateNodeKeys(join(ctx.paths.dataDir, 'keys', 'node.json'))
  ctx.log.info(created ? 'created a new node identity' : 'loaded the node identity', { address: author.address })

  const resources = ctx.sections.node?.resources
  let nodeFields: Record<string, unknown> = {
    address: author.address,
    version: ctx.version,
    startedAt: Date.now(),
    capacity: resources ? { vcpus: resources.vcpus, memoryMb: resources.memory_mb, diskGb: resources.disk_gb } : undefined,
  }
  // One writer for the node record, so a heartbeat never overwrites fresher fields with stale ones.
  let writing = Promise.resolve()
  const writeNodeRecord = () => {
    writing = writing.then(async () => {
      await store.put(author, 'nodes', author.address, { ...nodeFields, heartbeat: Date.now() })
    })
    return writing
  }
  await writeNodeRecord()
  const timer = setInterval(() => writeNodeRecord().catch((error: Error) => ctx.log.warn('heartbeat failed', { error: error.message })), config.heartbeat_interval_ms)
  timer.unref()

  const handle: StateHandle = {
    store,
    author,
    address: author.address,
    put: (c, k, v) => store.put(author, c, k, v),
    delete: (c, k) => store.delete(author, c, k),
    get: (c, k) => store.get(c, k),
    updateNodeRecord: async (fields) => {
      nodeFields = { ...nodeFields, ...fields }
      await writeNodeRecord()
    },
  }

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
  api.get('/watch/:collection', (req) => new ApiStream(store.watch(req.params.collection, req.query.get('prefix') ?? '', req.signal)))
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
  api.get('/info', () => ({ address: author.address, ...store.stats() }))

  return {
    handle,
    audience: author.address,
    info: () => ({ address: author.address, ops: store.stats().ops, quotaRefused: quota.refused }),
    stop: async () => {
      clearInterval(timer)
      await writing.catch(() => {})
      await store.close()
    },
  }
}
