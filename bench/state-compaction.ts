// What compaction costs and saves, in one run: the same number of operations applied as writes of
// new keys (nothing to drop) and as overwrites of a few keys (each one drops its predecessor in the
// same batch), with the operations stored and the bytes on disk after each. Without compaction the
// store kept every operation: the overwrite run would hold all N.
// Run: npx tsx bench/state-compaction.ts
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { authorFromKeys, generateAuthorKeys } from '../plugins/state/lib/identity.js'
import { createOp, type Op } from '../plugins/state/lib/op.js'
import { StateStore } from '../plugins/state/lib/store.js'
import { allCollections } from '../tests/helpers/collections.js'
import { recordResults } from './results.js'

const N = Number(process.env.BENCH_OPS ?? 10_000)
const KEYS = 100
const BATCH = 500
const ROUNDS = 3
const authors = Array.from({ length: 4 }, () => authorFromKeys(generateAuthorKeys()))
// node-record-like values (~400 bytes): what heartbeats used to rewrite
const make = (keyOf: (i: number) => number): Op[] =>
  Array.from({ length: N }, (_, i) => {
    const a = authors[i % authors.length]
    return createOp(a, 'dns', `${a.address}/k${keyOf(i)}`, { i, note: 'x'.repeat(300) }, { ms: 1_000_000 + i, n: 0 })
  })
const fresh = make((i) => i)
const overwrite = make((i) => Math.floor(i / authors.length) % (KEYS / authors.length))

const du = (dir: string): number => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)

async function run(ops: Op[]): Promise<{ rate: number; stored: number; bytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'form-bench-compaction-'))
  const store = await StateStore.open({ collections: allCollections, dir, now: () => 2_000_000_000 })
  const wire = ops.map((o) => JSON.stringify(o))
  const t0 = performance.now()
  for (let i = 0; i < ops.length; i += BATCH) {
    const r = await store.insert(wire.slice(i, i + BATCH).map((w) => JSON.parse(w)), 'bench')
    if (r.accepted !== Math.min(BATCH, ops.length - i)) throw new Error(`rejected: ${JSON.stringify(r.rejected[0])}`)
  }
  const rate = ops.length / ((performance.now() - t0) / 1000)
  const stored = store.stats().ops
  await store.close()
  const bytes = du(dir)
  rmSync(dir, { recursive: true, force: true })
  return { rate, stored, bytes }
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const runs: { fresh: Awaited<ReturnType<typeof run>>; over: Awaited<ReturnType<typeof run>> }[] = []
await run(fresh.slice(0, 1000)) // warm-up
for (let i = 0; i < ROUNDS; i++) runs.push({ fresh: await run(fresh), over: await run(overwrite) })
const pick = (f: (r: (typeof runs)[0]) => number) => median(runs.map(f))
const kb = (b: number) => `${Math.round(b / 1024)} KiB`
const body = [
  `${N} signed operations (~450 bytes, 4 authors) applied in batches of ${BATCH} to a fresh LevelDB store: once each to a new key, once as overwrites of ${KEYS} keys (each supersedes the previous operation of its key, which is dropped in the same batch). Before compaction the store kept every operation, so the overwrite run stored ${N}. Bytes: the LevelDB directory after close (uncompacted SST and log files included). Medians of ${ROUNDS} alternating rounds; the ratio is the median of per-round ratios.`,
  '',
  '| workload | ops/s | stored operations | bytes on disk | ratio to new keys |',
  '|---|---|---|---|---|',
  `| new keys | ${Math.round(pick((r) => r.fresh.rate))} | ${pick((r) => r.fresh.stored)} | ${kb(pick((r) => r.fresh.bytes))} | 1.00 |`,
  `| overwrites of ${KEYS} keys | ${Math.round(pick((r) => r.over.rate))} | ${pick((r) => r.over.stored)} | ${kb(pick((r) => r.over.bytes))} | ${pick((r) => r.over.rate / r.fresh.rate).toFixed(2)} |`,
  '',
  'Target: overwrites apply at >= 0.9x the rate of new keys and store one operation per key.',
].join('\n')
console.log(body)
recordResults('State compaction (bench/state-compaction.ts)', body)
