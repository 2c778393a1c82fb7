import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { Level } from 'level'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, opHash, type Op } from '../../plugins/state/lib/op.js'
import { allCollections } from '../helpers/collections.js'

const [a, b, c] = Array.from({ length: 3 }, () => authorFromKeys(generateAuthorKeys()))
const admin = authorFromKeys(generateAuthorKeys())
const DAY = 86_400_000

const hex = async (s: StateStore) => (await s.hashes()).map((h) => h.toString('hex'))

t.test('overwriting a key keeps one operation: the winner', async (t) => {
  const dir = t.testdir()
  let store = await StateStore.open({ collections: allCollections, dir })
  for (let i = 0; i < 100; i++) await store.put(a, 'dns', `${a.address}/www`, { i })
  await store.put(a, 'dns', `${a.address}/other`, { i: 0 })
  await store.delete(a, 'dns', `${a.address}/other`)
  const rec = await store.get('dns', `${a.address}/www`)
  t.match(rec, { value: { i: 99 } })
  t.equal(store.stats().ops, 2, 'one operation per key (a live record and a tombstone)')
  t.same(await hex(store), [rec!.hash, (await store.getRecord('dns', `${a.address}/other`))!.hash].sort(), 'reconciliation sees only current records')
  t.equal((await store.opsSince(0)).ops.length, 2, 'the log holds the same two')
  t.match(await store.inventory(), { records: 1, tombstones: 1, ops: 2 })
  // an older operation arriving late is valid, absorbed, and not stored
  const late = createOp(a, 'dns', `${a.address}/www`, { i: -1 }, { ms: 1, n: 0 })
  t.match(await store.insert([late], 'peer'), { accepted: 1, superseded: 1, rejected: [] })
  t.equal((await store.getOps([opHash(late)]))[0], undefined, 'the loser is not stored')
  t.equal(store.stats().ops, 2)
  // a copy of a stored operation is known by its hash: no signature work, so even a copy whose
  // signature was mangled on the way is only a duplicate (it is neither stored nor forwarded)
  const stored = (await store.getOps([rec!.hash]))[0]!
  t.match(await store.insert([stored, { ...stored, sig: '00'.repeat(64) }], 'peer'), { accepted: 0, duplicates: 2, rejected: [] })
  await store.close()
  store = await StateStore.open({ collections: allCollections, dir })
  t.teardown(() => store.close())
  t.equal(store.stats().ops, 2, 'the count survives a reopen')
})

// writes by several authors, deletions, admissions and node records of members and non-members
const arbAction = fc.oneof(
  fc.record({ kind: fc.constant('dns' as const), who: fc.integer({ min: 0, max: 2 }), key: fc.integer({ min: 0, max: 2 }), del: fc.boolean(), ms: fc.integer({ min: 1, max: 40 }), v: fc.integer() }),
  fc.record({ kind: fc.constant('member' as const), who: fc.integer({ min: 0, max: 2 }), admit: fc.boolean(), ms: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('node' as const), who: fc.integer({ min: 0, max: 2 }), ms: fc.integer({ min: 1, max: 40 }), v: fc.integer() }),
)
function toOp(x: { kind: 'dns' | 'member' | 'node'; who: number; key?: number; del?: boolean; admit?: boolean; ms: number; v?: number }): Op {
  const w = [a, b, c][x.who]
  if (x.kind === 'member') return createOp(admin, 'members', `${w.address}/${admin.address}`, { status: x.admit ? 'admitted' : 'revoked' }, { ms: x.ms, n: 0 })
  if (x.kind === 'node') return createOp(w, 'nodes', w.address, { heartbeat: x.v! & 0xffff }, { ms: x.ms, n: 0 })
  return createOp(w, 'dns', `${w.address}/k${x.key}`, x.del ? undefined : { v: x.v }, { ms: x.ms, n: 0 })
}

t.test('replicas fed the same ops in any order store the same operations, one per record, whatever the membership', async (t) => {
  const root = t.testdir()
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(arbAction, { minLength: 1, maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 2 ** 31 }), { minLength: 4, maxLength: 4 }), async (actions, seeds) => {
      const ops = actions.map(toOp)
      const stores = await Promise.all(seeds.map((_, i) => StateStore.open({ collections: allCollections, dir: join(root, `run${run}`, `r${i}`), admins: [admin.address], now: () => 1_000 })))
      run++
      try {
        const seen: string[] = []
        for (const [i, store] of stores.entries()) {
          const delivery = [...ops, ...ops.filter((_, j) => (seeds[i] >> j % 31) & 1)]
          const order = delivery.map((op, j) => ({ op, r: (seeds[i] * (j + 1) * 2654435761) % 4294967296 })).sort((x, y) => x.r - y.r)
          for (let j = 0; j < order.length; j += 3) await store.insert(order.slice(j, j + 3).map((x) => x.op), `peer${i}`)
          const inv = await store.inventory()
          if (inv.ops !== inv.records + inv.tombstones || store.stats().ops !== inv.ops) return false
          seen.push(JSON.stringify({ hashes: await hex(store), members: store.members(), nodes: await store.all('nodes'), dns: await store.all('dns') }))
        }
        return seen.every((s) => s === seen[0])
      } finally {
        await Promise.all(stores.map((s) => s.close()))
      }
    }),
    { numRuns: 25 },
  )
  t.pass(`${run} runs of 4 replicas stored identical operations`)
})

t.test('tombstones go after the horizon; an expired one arriving again is not stored', async (t) => {
  let now = 10 * DAY
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), tombstoneHorizonMs: 7 * DAY, now: () => now })
  t.teardown(() => store.close())
  await store.put(a, 'dns', `${a.address}/gone`, { v: 1 })
  const tomb = await store.delete(a, 'dns', `${a.address}/gone`)
  await store.put(a, 'dns', `${a.address}/kept`, { v: 1 })
  now += 7 * DAY - 1
  t.equal(await store.expireTombstones(), 0, 'a tombstone within the horizon stays')
  now += 2
  t.equal(await store.expireTombstones(), 1, 'past it, it goes')
  t.equal(await store.getRecord('dns', `${a.address}/gone`), undefined)
  t.match(await store.get('dns', `${a.address}/kept`), { value: { v: 1 } }, 'a live record older than the horizon stays')
  t.match(await store.inventory(), { records: 1, tombstones: 0, ops: 1, tombstonesExpired: 1 })
  const op = createOp(a, 'dns', `${a.address}/gone`, undefined, tomb.t)
  t.match(await store.insert([op], 'peer'), { accepted: 1, superseded: 1 }, 'a peer that still has it sends it back: absorbed, not stored')
  t.equal(store.stats().ops, 1)
})

t.test('a store closed longer than the horizon opens empty and says why; a lone node keeps its state', async (t) => {
  let now = 100 * DAY
  const open = (dir: string) => StateStore.open({ collections: allCollections, dir, tombstoneHorizonMs: 7 * DAY, self: a.address, now: () => now })
  const networked = join(t.testdir(), 'net')
  const alone = join(t.testdir(), 'alone')
  for (const dir of [networked, alone]) {
    const s = await open(dir)
    await s.put(a, 'nodes', a.address, { heartbeat: now })
    if (dir === networked) await s.put(b, 'nodes', b.address, { heartbeat: now })
    await s.close()
  }
  now += 7 * DAY - 1000
  let s = await open(networked)
  t.equal(s.resync, undefined, 'back within the horizon: nothing happens')
  t.equal(s.stats().ops, 2)
  await s.close()
  now += 7 * DAY + 1
  s = await open(networked)
  t.match(s.resync, { horizonMs: 7 * DAY, message: /re-synced from scratch: this node was away 7\.0 days/ }, 'away too long: it says so')
  t.equal(s.stats().ops, 0, 'and starts empty, to take the state from its peers')
  t.equal((await s.all('nodes')).length, 0)
  await s.close()
  now += 8 * DAY
  s = await open(alone)
  t.teardown(() => s.close())
  t.equal(s.resync, undefined, 'a node that knows no other keeps its state (it is the only copy)')
  t.equal(s.stats().ops, 1)
})

t.test('a store written before compaction is compacted once when opened', async (t) => {
  const dir = t.testdir()
  const ops = [1, 2, 3].map((ms) => createOp(a, 'dns', `${a.address}/www`, { ms }, { ms, n: 0 }))
  const other = createOp(b, 'dns', `${b.address}/x`, { v: 1 }, { ms: 1, n: 0 })
  // the old layout: every op in `ops` and `seq`, records without their seq
  const db = new Level<string, any>(dir, { valueEncoding: 'json' })
  const opsDb = db.sublevel<string, Buffer>('ops', { valueEncoding: 'buffer' })
  const seqDb = db.sublevel<string, string>('seq', { valueEncoding: 'utf8' })
  const recDb = db.sublevel<string, unknown>('records', { valueEncoding: 'json' })
  for (const [i, op] of [...ops, other].entries()) {
    await opsDb.put(opHash(op), Buffer.from(JSON.stringify(op)))
    await seqDb.put(i.toString(16).padStart(13, '0'), opHash(op))
  }
  for (const op of [ops[2], other]) await recDb.put(`dns\u0000${op.k}`, { hash: opHash(op), t: op.t, author: op.by.address, val: op.val })
  await db.close()

  const store = await StateStore.open({ collections: allCollections, dir })
  t.teardown(() => store.close())
  t.equal(store.stats().ops, 2)
  t.same(await hex(store), [opHash(ops[2]), opHash(other)].sort())
  t.same((await store.opsSince(0)).ops.map((o) => o.hash), [opHash(ops[2]), opHash(other)])
  const next = await store.put(a, 'dns', `${a.address}/www`, { ms: 4 })
  t.same((await store.opsSince(0)).ops.map((o) => o.hash), [opHash(other), next.hash], 'a migrated winner is dropped with its log entry once superseded')
})
