// Bytes exchanged by anti-entropy (range-based set reconciliation) when two stores of 100,000
// operations differ by 1, 100 and 10,000 operations, against a full transfer, in one run.
// Run: npx tsx bench/sync-reconcile.ts
import { createHash } from 'node:crypto'
import { decodeRanges, encodeRanges, IdSet, Reconciler, type Id } from '../plugins/state/lib/sync/rbsr.js'
import { recordResults } from './results.js'

const N = 100_000
const OP_BYTES = 330 // a typical signed operation on the wire (measured in bench/state-apply.ts's data)
const id = (n: number): Id => createHash('sha256').update(`op-${n}`).digest()
const common = Array.from({ length: N }, (_, i) => id(i))

function exchange(a: Id[], b: Id[]) {
  const A = new Reconciler(new IdSet(a), { maxIdsPerMessage: 2000 })
  const B = new Reconciler(new IdSet(b), { maxIdsPerMessage: 2000 })
  let bytes = 0
  let rounds = 0
  let missing = 0
  let msg: Uint8Array | undefined = encodeRanges(A.initiate())
  let side = B
  while (msg) {
    bytes += msg.length + 5 // frame header
    rounds++
    const step = side.respond(decodeRanges(msg))
    missing += step.have.length + step.need.length
    msg = step.reply ? encodeRanges(step.reply) : undefined
    side = side === B ? A : B
  }
  // then the want list (32 bytes per id) and the operations themselves
  return { rounds, reconcileBytes: bytes, transferBytes: bytes + missing * (32 + OP_BYTES), missing }
}

const rows: string[] = []
for (const diff of [1, 100, 10_000]) {
  // B lacks `diff` of A's operations, spread over the key space
  const step = Math.floor(N / diff)
  const b = common.filter((_, i) => i % step !== 0 || i / step >= diff)
  const t0 = performance.now()
  const r = exchange(common, b)
  const ms = performance.now() - t0
  const full = N * OP_BYTES
  rows.push(`| ${diff} | ${r.missing} | ${r.rounds} | ${r.reconcileBytes} | ${r.transferBytes} | ${full} | ${(r.transferBytes / full).toFixed(5)} | ${ms.toFixed(0)} |`)
}
const body = [
  `Two sets of ${N} operation hashes; the second lacks d of them. Bytes are the reconciliation messages (with frame headers), then the total including the want list and the missing operations (~${OP_BYTES} B each). Full transfer = every operation.`,
  '',
  '| difference d | found | rounds | reconciliation bytes | total bytes | full transfer bytes | ratio total/full | CPU ms |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
].join('\n')
console.log(body)
recordResults('Anti-entropy bytes (bench/sync-reconcile.ts)', body)
