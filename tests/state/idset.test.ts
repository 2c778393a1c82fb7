import t from 'tap'
import fc from 'fast-check'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { IdSet } from '../../plugins/state/lib/sync/rbsr.js'
import { allCollections } from '../helpers/collections.js'

const authors = Array.from({ length: 2 }, () => authorFromKeys(generateAuthorKeys()))
const DAY = 86_400_000

/** The store's incremental set against one rebuilt from every hash on disk. */
async function matchesDisk(store: StateStore): Promise<string | undefined> {
  const live = await store.idSet()
  const disk = new IdSet(await store.hashes())
  if (live.size !== disk.size) return `size ${live.size}, on disk ${disk.size}`
  const hex = (ids: Uint8Array[]) => ids.map((i) => Buffer.from(i).toString('hex')).join()
  if (hex(live.slice(0, live.size)) !== hex(disk.ids)) return 'the ids differ from those on disk'
  for (const [from, to] of [[0, disk.size], [0, disk.size >> 1], [disk.size >> 2, disk.size]]) {
    if (Buffer.compare(live.fingerprint(from, to), disk.fingerprint(from, to)) !== 0) return `fingerprint(${from}, ${to}) differs`
  }
  return undefined
}

t.test('property: the store keeps its reconciliation set equal to its stored hashes through writes, overwrites, late losers, deletes and expiry', async (t) => {
  let run = 0
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ who: fc.integer({ min: 0, max: 1 }), key: fc.integer({ min: 0, max: 15 }), ms: fc.integer({ min: 1, max: 40 }), del: fc.boolean() }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 8 }),
      async (writes, batch) => {
        let now = 50 * DAY
        const store = await StateStore.open({ collections: allCollections, dir: t.testdir() + `/${run++}`, tombstoneHorizonMs: 7 * DAY, now: () => now })
        try {
          // loaded before the writes: from here on it is only updated, never re-read
          await store.idSet()
          const ops = writes.map((w) => {
            const a = authors[w.who]
            return createOp(a, 'dns', `${a.address}/k${w.key}`, w.del ? undefined : { ms: w.ms }, { ms: now - 10 * DAY + w.ms * 1000, n: 0 })
          })
          for (let i = 0; i < ops.length; i += batch) await store.insert(ops.slice(i, i + batch), 'peer')
          const afterWrites = await matchesDisk(store)
          if (afterWrites) throw new Error(`after ${ops.length} writes: ${afterWrites}`)
          now += 20 * DAY
          await store.expireTombstones()
          const afterExpiry = await matchesDisk(store)
          if (afterExpiry) throw new Error(`after tombstone expiry: ${afterExpiry}`)
          return true
        } finally {
          await store.close()
        }
      },
    ),
    { numRuns: 40 },
  )
  t.pass('40 random histories')
})
