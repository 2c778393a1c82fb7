// Apply throughput of the state store (decode + verify + authorize + value schema + persist to
// LevelDB) against raw Ed25519 verification of the same messages, in one run; and the cost of the
// membership and schema checks: the same store with permissive collections and no membership (the
// figure before them), and reads of member records with and without the membership filter.
// Run: npx tsx bench/state-apply.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import { verify } from 'node:crypto'
import { canonicalJson } from '../plugins/state/lib/canonical.js'
import { authorFromKeys, ed25519PublicKeyFromHex, generateAuthorKeys } from '../plugins/state/lib/identity.js'
import { createOp, type Op } from '../plugins/state/lib/op.js'
import { StateStore } from '../plugins/state/lib/store.js'
import { recordResults } from './results.js'
import * as t from 'typanion'
import type { CollectionDeclaration } from '../core/plugin.js'
import { allCollections } from '../tests/helpers/collections.js'

const N = Number(process.env.BENCH_OPS ?? 20_000)
const BATCH = 500
const authors = Array.from({ length: 4 }, () => authorFromKeys(generateAuthorKeys()))
// subnet claims: a collection only members' records count in, with a value schema
const ops: Op[] = Array.from({ length: N }, (_, i) => {
  const a = authors[i % authors.length]
  const subnet = `10.${(i >> 8) & 255}.${i & 255}.0_24`
  return createOp(a, 'cidrs', `${subnet}/${a.address}`, { node: a.address, subnet: subnet.replace('_', '/'), note: 'x'.repeat(120) }, { ms: 1_000_000 + i, n: 0 })
})
// the figure before: the same key rules, every value accepted, no membership
const permissive: CollectionDeclaration[] = allCollections.map((c) => ({ ...c, rules: c.rules.map((r) => ({ ...r, schema: t.isUnknown() })) }))
const admin = authorFromKeys(generateAuthorKeys())
const admissions = authors.map((a, i) => createOp(admin, 'members', `${a.address}/${admin.address}`, { status: 'admitted' }, { ms: 1000 + i, n: 0 }))
// Serialize/parse like ops arriving from the network.
const wire = ops.map((o) => JSON.stringify(o))

function rawVerify(): number {
  const keys = new Map(authors.map((a) => [a.delegation.key, ed25519PublicKeyFromHex(a.delegation.key)]))
  const t0 = performance.now()
  for (const w of wire) {
    const op = JSON.parse(w) as Op
    const { sig, ...body } = op
    if (!verify(null, Buffer.concat([Buffer.from('form-op-v1\n'), Buffer.from(canonicalJson(body))]), keys.get(op.by.key)!, Buffer.from(sig, 'hex'))) throw new Error('bad')
  }
  return N / ((performance.now() - t0) / 1000)
}

async function apply(verifyWorkers: number, checked = true): Promise<{ rate: number; readRate: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'form-bench-state-'))
  const store = await StateStore.open(
    checked
      ? { collections: allCollections, admins: [admin.address], dir, now: () => 2_000_000_000, verifyWorkers }
      : { collections: permissive, dir, now: () => 2_000_000_000, verifyWorkers },
  )
  if (checked && (await store.insert(admissions, 'bench')).accepted !== authors.length) throw new Error('admissions rejected')
  const t0 = performance.now()
  // Like a node fed by the network: the next message is verified while LevelDB writes the previous
  // one on its own thread; at most 4 batches are in flight.
  const inflight: Promise<{ accepted: number; rejected: unknown[] }>[] = []
  const settle = async () => {
    const r = await inflight.shift()!
    if (r.rejected.length) throw new Error(`rejected: ${JSON.stringify(r.rejected[0])}`)
    return r.accepted
  }
  let accepted = 0
  for (let i = 0; i < N; i += BATCH) {
    inflight.push(store.insert(wire.slice(i, i + BATCH).map((w) => JSON.parse(w)), 'bench'))
    if (inflight.length >= 4) accepted += await settle()
    else await new Promise((r) => setImmediate(r))
  }
  while (inflight.length) accepted += await settle()
  if (accepted !== N) throw new Error(`only ${accepted} of ${N} applied`)
  const rate = N / ((performance.now() - t0) / 1000)
  const r0 = performance.now()
  let read = 0
  for (let i = 0; i < 5; i++) read += (await store.all('cidrs')).length
  const readRate = read / ((performance.now() - r0) / 1000)
  if (read !== 5 * N) throw new Error(`read ${read} records, expected ${5 * N}`)
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return { rate, readRate }
}

rawVerify() // warm-up
const raw = rawVerify()
// before and checked alternate, 3 rounds, medians: a loaded machine drifts between runs
const ROUNDS = 3
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
async function pair(workers: number) {
  const runs: { before: { rate: number; readRate: number }; checked: { rate: number; readRate: number } }[] = []
  for (let i = 0; i < ROUNDS; i++) runs.push({ before: await apply(workers, false), checked: await apply(workers) })
  const pick = (f: (r: (typeof runs)[0]) => number) => median(runs.map(f))
  return {
    before: { rate: pick((r) => r.before.rate), readRate: pick((r) => r.before.readRate) },
    checked: { rate: pick((r) => r.checked.rate), readRate: pick((r) => r.checked.readRate) },
    ratio: pick((r) => r.checked.rate / r.before.rate),
    readRatio: pick((r) => r.checked.readRate / r.before.readRate),
  }
}
const main = await pair(0)
const workers = availableParallelism()
const pool = await pair(workers)
const [before, applied, pooledBefore, pooled] = [main.before, main.checked, pool.before, pool.checked]
const body = [
  `${N} operations (4 member authors, ~400-byte subnet claims), inserted in batches of ${BATCH} into a fresh LevelDB store, up to 4 batches in flight; LevelDB writes on its own thread. Raw verify is one core; apply rows measure the store end to end. "Before" is the same store with every value accepted and no membership (the figure before schemas and membership); "checked" validates every value against its collection's typanion schema and filters reads by membership. Reads: store.all('cidrs') five times. Medians of ${ROUNDS} alternating rounds; the ratio column is the median of per-round ratios.`,
  '',
  '| measure | ops/s | ratio to raw verify | checked / before |',
  '|---|---|---|---|',
  `| raw Ed25519 verify (parse + canonical encode + verify) | ${Math.round(raw)} | 1.00 | |`,
  `| store apply, main thread, before | ${Math.round(before.rate)} | ${(before.rate / raw).toFixed(2)} | |`,
  `| store apply, main thread, checked | ${Math.round(applied.rate)} | ${(applied.rate / raw).toFixed(2)} | ${main.ratio.toFixed(2)} |`,
  `| store apply, ${workers} worker thread(s), before | ${Math.round(pooledBefore.rate)} | ${(pooledBefore.rate / raw).toFixed(2)} | |`,
  `| store apply, ${workers} worker thread(s), checked | ${Math.round(pooled.rate)} | ${(pooled.rate / raw).toFixed(2)} | ${pool.ratio.toFixed(2)} |`,
  `| read member records, before (records/s) | ${Math.round(before.readRate)} | | |`,
  `| read member records, membership filter (records/s) | ${Math.round(applied.readRate)} | | ${main.readRatio.toFixed(2)} |`,
  '',
  'Target: apply >= 0.8x raw verification; schemas and membership cost <= 10% of apply.',
].join('\n')
console.log(body)
recordResults('State apply throughput (bench/state-apply.ts)', body)
