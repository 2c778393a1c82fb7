// Apply throughput of the state store (decode + verify + authorize + persist to LevelDB) against raw
// Ed25519 verification of the same messages, in one run. Run: npx tsx bench/state-apply.ts
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
import { allCollections } from '../tests/helpers/collections.js'

const N = Number(process.env.BENCH_OPS ?? 20_000)
const BATCH = 500
const authors = Array.from({ length: 4 }, () => authorFromKeys(generateAuthorKeys()))
const ops: Op[] = Array.from({ length: N }, (_, i) => {
  const a = authors[i % authors.length]
  return createOp(a, 'dns', `${a.address}/name${i % 1000}`, { ip: `10.0.${(i >> 8) & 255}.${i & 255}`, ttl: 60 }, { ms: 1_000_000 + i, n: 0 })
})
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

async function apply(verifyWorkers: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'form-bench-state-'))
  const store = await StateStore.open({ collections: allCollections, dir, now: () => 2_000_000_000, verifyWorkers })
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
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return rate
}

rawVerify() // warm-up
const raw = rawVerify()
const applied = await apply(0)
const workers = availableParallelism()
const pooled = await apply(workers)
const body = [
  `${N} operations (4 authors, ~300-byte ops), inserted in batches of ${BATCH} into a fresh LevelDB store, up to 4 batches in flight; LevelDB writes on its own thread. Raw verify is one core; apply rows measure the store end to end.`,
  '',
  '| measure | ops/s | ratio to raw verify |',
  '|---|---|---|',
  `| raw Ed25519 verify (parse + canonical encode + verify) | ${Math.round(raw)} | 1.00 |`,
  `| store apply, verification on the main thread | ${Math.round(applied)} | ${(applied / raw).toFixed(2)} |`,
  `| store apply, verification on ${workers} worker thread(s) | ${Math.round(pooled)} | ${(pooled / raw).toFixed(2)} |`,
  '',
  'Target: apply >= 0.8x raw verification.',
].join('\n')
console.log(body)
recordResults('State apply throughput (bench/state-apply.ts)', body)
