import t from 'tap'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { StateStore } from '../../plugins/state/lib/store.js'
import { wins } from '../../plugins/state/lib/op.js'
import { allCollections } from '../helpers/collections.js'

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))

interface Ack {
  hash: string
  key: string
  t: { ms: number; n: number }
}

async function crashOnce(dir: string, killAfterMs: number): Promise<Ack[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
  const acked: Ack[] = []
  const lines = createInterface({ input: child.stdout! })
  const exited = new Promise((r) => child.on('exit', r))
  let timer: NodeJS.Timeout | undefined
  for await (const line of lines) {
    if (line === 'ready') timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    else if (line.startsWith('ack ')) {
      const [hash, key, ms, n] = line.slice(4).split(' ')
      acked.push({ hash, key, t: { ms: Number(ms), n: Number(n) } })
    }
  }
  clearTimeout(timer)
  await exited
  return acked
}

// The store keeps only each record's winning operation (compaction): an acknowledged write survives
// as that record's operation, or is superseded by a later acknowledged one, never lost.
t.test('every acknowledged write survives SIGKILL, and records match the op log', async (t) => {
  const dir = t.testdir()
  const all: Ack[] = []
  for (let round = 0; round < 4; round++) {
    const acked = await crashOnce(dir, 150 + Math.floor(Math.random() * 400))
    t.ok(acked.length > 0, `round ${round}: the writer acknowledged ${acked.length} writes before it was killed`)
    all.push(...acked)
    const store = await StateStore.open({ collections: allCollections, dir })
    try {
      const lost: Ack[] = []
      for (const a of all) {
        const rec = await store.getRecord('dns', a.key)
        if (!rec || (rec.hash !== a.hash && !wins(rec, a))) lost.push(a)
      }
      t.same(lost, [], `round ${round}: all ${all.length} acknowledged writes so far are present or superseded by a later one`)
      // Recompute each record from the whole log and compare with the stored winners.
      const best = new Map<string, { t: { ms: number; n: number }; hash: string; val: unknown }>()
      let logged = 0
      for (let seq = 0; ; ) {
        const page = await store.opsSince(seq, 5000)
        logged += page.ops.length
        for (const { op, hash } of page.ops) {
          const cur = best.get(op.k)
          if (!cur || wins({ t: op.t, hash }, cur)) best.set(op.k, { t: op.t, hash, val: op.val })
        }
        if (page.ops.length === 0) break
        seq = page.next
      }
      const records = (await store.list('dns', { limit: 10_000 })).records
      t.equal(records.length, best.size, 'one record per key in the log')
      t.ok(records.every((r) => best.get(r.key)?.hash === r.hash), 'every record is the winner of its operations')
      t.equal(logged, records.length, 'the log holds one operation per record (superseded ones are gone)')
      t.equal(store.stats().ops, records.length, 'the stored op count matches')
    } finally {
      await store.close()
    }
  }
})
