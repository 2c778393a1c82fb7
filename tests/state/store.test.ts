import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { StateStore, type StateRecord } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys, type Author } from '../../plugins/state/lib/identity.js'
import { createOp, type Op } from '../../plugins/state/lib/op.js'
import { allCollections, collectionNames } from '../helpers/collections.js'

const authors: Author[] = Array.from({ length: 3 }, () => authorFromKeys(generateAuthorKeys()))

async function snapshot(store: StateStore): Promise<Record<string, StateRecord[]>> {
  const out: Record<string, StateRecord[]> = {}
  for (const c of collectionNames) out[c] = (await store.list(c, { includeDeleted: true, limit: 10_000 })).records
  return out
}

t.test('put, get, list with prefix and paging, delete as tombstone', async (t) => {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir() })
  t.teardown(() => store.close())
  const [a] = authors
  await store.put(a, 'accounts', a.address, { name: 'ada' })
  for (let i = 0; i < 5; i++) await store.put(a, 'dns', `${a.address}/site${i}`, { ip: `10.0.0.${i}` })
  t.match(await store.get('accounts', a.address), { value: { name: 'ada' }, author: a.address, deleted: false })
  const page1 = await store.list('dns', { prefix: `${a.address}/`, limit: 2 })
  t.same(page1.records.map((r) => r.key.split('/')[1]), ['site0', 'site1'])
  const page2 = await store.list('dns', { prefix: `${a.address}/`, limit: 10, cursor: page1.cursor })
  t.same(page2.records.map((r) => r.key.split('/')[1]), ['site2', 'site3', 'site4'])
  t.equal(page2.cursor, undefined)
  await store.delete(a, 'dns', `${a.address}/site0`)
  t.equal(await store.get('dns', `${a.address}/site0`), undefined)
  t.match(await store.getRecord('dns', `${a.address}/site0`), { deleted: true, value: null })
  t.equal((await store.list('dns')).records.length, 4)
})

t.test('last writer wins by (timestamp, hash), whatever the arrival order', async (t) => {
  const [a] = authors
  const older = createOp(a, 'accounts', a.address, { v: 'old' }, { ms: 1000, n: 0 })
  const newer = createOp(a, 'accounts', a.address, { v: 'new' }, { ms: 2000, n: 0 })
  const tieA = createOp(a, 'accounts', a.address, { v: 'tie-a' }, { ms: 3000, n: 5 })
  const tieB = createOp(a, 'accounts', a.address, { v: 'tie-b' }, { ms: 3000, n: 5 })
  const s1 = await StateStore.open({ collections: allCollections, dir: join(t.testdir(), 'a') })
  const s2 = await StateStore.open({ collections: allCollections, dir: join(t.testdir(), 'b') })
  t.teardown(async () => (await s1.close(), await s2.close()))
  await s1.insert([older, newer], 'test')
  await s2.insert([newer, older], 'test')
  t.match(await s1.get('accounts', a.address), { value: { v: 'new' } })
  t.same(await s1.get('accounts', a.address), await s2.get('accounts', a.address))
  await s1.insert([tieA], 'test')
  await s1.insert([tieB], 'test')
  await s2.insert([tieB, tieA], 'test')
  t.same(await s1.get('accounts', a.address), await s2.get('accounts', a.address), 'a timestamp tie breaks the same way everywhere')
})

t.test('duplicates are ignored and the log keeps each operation once', async (t) => {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir() })
  t.teardown(() => store.close())
  const [a] = authors
  const op = createOp(a, 'accounts', a.address, { v: 1 }, { ms: 5, n: 0 })
  const r1 = await store.insert([op, op], 'peer')
  const r2 = await store.insert([op], 'peer')
  t.match(r1, { accepted: 1, duplicates: 1 })
  t.match(r2, { accepted: 0, duplicates: 1 })
  t.equal((await store.opsSince(0)).ops.length, 1)
})

t.test('reopening is immediate and keeps everything', async (t) => {
  const dir = t.testdir()
  const [a] = authors
  let store = await StateStore.open({ collections: allCollections, dir })
  for (let i = 0; i < 50; i++) await store.put(a, 'dns', `${a.address}/n${i}`, { i })
  await store.close()
  store = await StateStore.open({ collections: allCollections, dir })
  t.teardown(() => store.close())
  t.equal(store.stats().ops, 50)
  t.equal((await store.list('dns')).records.length, 50)
  const next = await store.put(a, 'dns', `${a.address}/after`, { i: 1 })
  t.equal((await store.opsSince(50)).ops[0].hash, next.hash, 'sequence numbers continue after reopen')
})

t.test('watch yields changes of its collection and prefix until aborted', async (t) => {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir() })
  t.teardown(() => store.close())
  const [a, b] = authors
  const abort = new AbortController()
  const seen: string[] = []
  const done = (async () => {
    for await (const c of store.watch('dns', `${a.address}/`, abort.signal)) {
      seen.push(`${c.key.split('/')[1]}=${(c.value as { v: unknown }).v}`)
      if (seen.length === 2) abort.abort()
    }
  })()
  await store.put(b, 'dns', `${b.address}/x`, { v: 'other owner' })
  await store.put(a, 'accounts', a.address, { v: 'other collection' })
  await store.put(a, 'dns', `${a.address}/one`, { v: 1 })
  await store.put(a, 'dns', `${a.address}/two`, { v: 2 })
  await done
  t.same(seen, ['one=1', 'two=2'])
})

// Random writes by several authors to shared and own keys, as operations.
const arbWrites = fc.array(
  fc.record({ author: fc.integer({ min: 0, max: 2 }), key: fc.integer({ min: 0, max: 4 }), ms: fc.integer({ min: 1, max: 50 }), n: fc.integer({ min: 0, max: 2 }), del: fc.boolean(), v: fc.integer() }),
  { minLength: 1, maxLength: 40 },
)

function toOps(writes: { author: number; key: number; ms: number; n: number; del: boolean; v: number }[]): Op[] {
  return writes.map((w) => {
    const a = authors[w.author]
    return createOp(a, 'dns', `${a.address}/k${w.key}`, w.del ? undefined : { v: w.v }, { ms: w.ms, n: w.n })
  })
}

t.test('convergence: 5 LevelDB replicas fed the same ops in random orders, with duplicates, end identical', async (t) => {
  const root = t.testdir()
  let run = 0
  await fc.assert(
    fc.asyncProperty(arbWrites, fc.array(fc.integer({ min: 0, max: 2 ** 31 }), { minLength: 5, maxLength: 5 }), async (writes, seeds) => {
      const ops = toOps(writes)
      const stores = await Promise.all(seeds.map((_, i) => StateStore.open({ collections: allCollections, dir: join(root, `run${run}`, `r${i}`) })))
      run++
      try {
        for (const [i, store] of stores.entries()) {
          // a deterministic shuffle per replica, with every op delivered once or twice, in chunks
          const delivery = [...ops, ...ops.filter((_, j) => (seeds[i] >> j % 31) & 1)]
          const order = delivery.map((op, j) => ({ op, r: (seeds[i] * (j + 1) * 2654435761) % 4294967296 })).sort((x, y) => x.r - y.r)
          for (let j = 0; j < order.length; j += 3) await store.insert(order.slice(j, j + 3).map((x) => x.op), `peer${i}`)
        }
        const states = await Promise.all(stores.map(snapshot))
        return states.every((s) => JSON.stringify(s) === JSON.stringify(states[0]))
      } finally {
        await Promise.all(stores.map((s) => s.close()))
      }
    }),
    { numRuns: 25 },
  )
  t.pass(`${run} runs of 5 replicas converged`)
})
