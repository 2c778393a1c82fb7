// Replication with the wire limits on (the defaults) against the same code with them lifted, in one
// run: throughput (operations a second for a batch written on node 1 to reach all 3 nodes) and
// latency (one write on node 1 until node 3 shows it, median of 20).
// Run: npm run build && npx tsx bench/p2p-limits.ts
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../plugins/state/lib/identity.js'
import { createOp } from '../plugins/state/lib/op.js'
import { makeEnv, startNode, type FormEnv, type NodeProcess } from '../tests/helpers/form.js'
import { median, recordResults } from './results.js'

const OPS = Number(process.env.BENCH_OPS ?? 5000)
const SAMPLES = 20
/** the limits lifted: frames, buffers, connections, streams and timeouts as good as unbounded */
const LIFTED = `[net]
max_connections = 100000
max_streams_per_connection = 10000
max_frame_bytes = 2147483648
max_peer_buffered_bytes = 1099511627776
max_buffered_bytes = 1099511627776
stream_read_timeout_ms = 3600000
frame_timeout_ms = 3600000
[state]
sync_batch_bytes = 2147483648
max_want_ids = 10000000
`

async function measure(config: string): Promise<{ throughput: number; latencyMs: number; batchMs: number }> {
  const cleanups: (() => unknown)[] = []
  const scope = { testdir: () => mkdtempSync(join(tmpdir(), 'form-bench-limits-')), teardown: (fn: () => unknown) => void cleanups.push(fn) }
  const envs: FormEnv[] = []
  const nodes: NodeProcess[] = []
  try {
    for (let i = 0; i < 3; i++) {
      const boot = i ? (await createClient({ socket: envs[0].socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0] : undefined
      const fe = await makeEnv(scope, boot ? { FORM_BOOTSTRAP: boot } : {})
      writeFileSync(join(fe.configDir, 'operator.toml'), config)
      envs.push(fe)
      nodes.push(await startNode(fe))
    }
    for (;;) {
      const n = await Promise.all(envs.map((fe) => createClient({ socket: fe.socket }).get<{ records: unknown[] }>('/v1/state/records/nodes')))
      if (n.every((r) => r.records.length === 3)) break
      await new Promise((r) => setTimeout(r, 200))
    }
    const count = async (fe: FormEnv) => (await createClient({ socket: fe.socket }).get<{ ops: number }>('/v1/state/info')).ops
    const author = authorFromKeys(generateAuthorKeys())
    // 1 KB values: batches of several frames under the limits, one frame without them
    const pad = 'x'.repeat(1000)
    const ops = Array.from({ length: OPS }, (_, i) => createOp(author, 'dns', `${author.address}/n${i}`, { i, pad }, { ms: Date.now(), n: i }))
    const target = await Promise.all(envs.map(count))
    const client = createClient({ socket: envs[0].socket, timeoutMs: 120_000 })
    const t0 = performance.now()
    for (let i = 0; i < OPS; i += 1000) await client.post('/v1/state/ops', { ops: ops.slice(i, i + 1000) })
    for (let i = 0; i < 3; i++) while ((await count(envs[i])) < target[i] + OPS) await new Promise((r) => setTimeout(r, 50))
    const batchMs = performance.now() - t0
    const latencies: number[] = []
    for (let s = 0; s < SAMPLES; s++) {
      const key = `${author.address}/l${s}`
      const op = createOp(author, 'dns', key, { s }, { ms: Date.now(), n: 0 })
      const t1 = performance.now()
      await client.post('/v1/state/ops', { ops: [op] })
      const far = createClient({ socket: envs[2].socket })
      for (;;) {
        if (await far.get(`/v1/state/records/dns/${key}`).then(() => true, () => false)) break
        await new Promise((r) => setTimeout(r, 5))
      }
      latencies.push(performance.now() - t1)
    }
    return { throughput: OPS / (batchMs / 1000), latencyMs: median(latencies), batchMs }
  } finally {
    for (const n of nodes) await n.stop('SIGKILL')
    for (const c of cleanups.reverse()) await c()
    for (const fe of envs) rmSync(fe.dir, { recursive: true, force: true })
  }
}

const off = await measure(LIFTED)
const on = await measure('')
const body = [
  `${OPS} operations of ~1.1 KB posted to node 1 (batches of 1000), until all 3 node processes on loopback have them; then ${SAMPLES} single writes on node 1, each timed until node 3 shows it. Same code, the wire limits lifted (huge frames, buffers, connections, timeouts; one frame per batch) vs the defaults (1 MiB batches in 4 MiB frames, 16/128 MiB buffers, 64 connections, 30 s reads).`,
  '',
  '| measure | limits lifted | limits on (defaults) | ratio on/lifted |',
  '|---|---|---|---|',
  `| batch reaches all 3 nodes (ms) | ${off.batchMs.toFixed(0)} | ${on.batchMs.toFixed(0)} | ${(on.batchMs / off.batchMs).toFixed(2)} |`,
  `| throughput (ops/s) | ${off.throughput.toFixed(0)} | ${on.throughput.toFixed(0)} | ${(on.throughput / off.throughput).toFixed(2)} |`,
  `| single write to node 3, median (ms) | ${off.latencyMs.toFixed(1)} | ${on.latencyMs.toFixed(1)} | ${(on.latencyMs / off.latencyMs).toFixed(2)} |`,
].join('\n')
console.log(body)
recordResults('Replication with the wire limits on vs lifted (bench/p2p-limits.ts)', body)
