// Time for 10,000 operations written on one node to reach all 5 nodes of a network (real node
// processes on loopback), against the time the first node takes to accept them, in one run.
// Run: npm run build && npx tsx bench/p2p-propagation.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../plugins/state/lib/identity.js'
import { createOp } from '../plugins/state/lib/op.js'
import { makeEnv, startNode, type FormEnv, type NodeProcess } from '../tests/helpers/form.js'
import { recordResults } from './results.js'

const OPS = Number(process.env.BENCH_OPS ?? 10_000)
const cleanups: (() => unknown)[] = []
const scope = {
  testdir: () => mkdtempSync(join(tmpdir(), 'form-bench-net-')),
  teardown: (fn: () => unknown) => void cleanups.push(fn),
}
const envs: FormEnv[] = []
const nodes: NodeProcess[] = []
try {
  envs.push(await makeEnv(scope))
  nodes.push(await startNode(envs[0]))
  const boot = (await createClient({ socket: envs[0].socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  for (let i = 1; i < 5; i++) {
    envs.push(await makeEnv(scope, { FORM_BOOTSTRAP: boot }))
    nodes.push(await startNode(envs[i]))
  }
  const count = async (fe: FormEnv) => (await createClient({ socket: fe.socket }).get<{ ops: number }>('/v1/state/info')).ops
  const base = await Promise.all(envs.map(count))
  // wait for the mesh: every node has every node record
  for (;;) {
    const n = await Promise.all(envs.map((fe) => createClient({ socket: fe.socket }).get<{ records: unknown[] }>('/v1/state/records/nodes')))
    if (n.every((r) => r.records.length === 5)) break
    await new Promise((r) => setTimeout(r, 200))
  }
  const author = authorFromKeys(generateAuthorKeys())
  const ops = Array.from({ length: OPS }, (_, i) => createOp(author, 'dns', `${author.address}/n${i}`, { i }, { ms: Date.now(), n: i }))
  const target = await Promise.all(envs.map(count))
  const client = createClient({ socket: envs[0].socket })
  const t0 = performance.now()
  for (let i = 0; i < OPS; i += 500) await client.post('/v1/state/ops', { ops: ops.slice(i, i + 500) })
  const accepted = performance.now() - t0
  const reached: number[] = []
  const pending = new Set(envs.map((_, i) => i))
  while (pending.size) {
    for (const i of [...pending]) if ((await count(envs[i])) >= target[i] + OPS) (reached[i] = performance.now() - t0), pending.delete(i)
    await new Promise((r) => setTimeout(r, 100))
  }
  const all = Math.max(...reached)
  const body = [
    `${OPS} operations posted to node 1 in batches of 500; 5 node processes on loopback (push replication, anti-entropy every 30 s as a backstop). Nodes started with ${base.join('/')} ops.`,
    '',
    '| measure | ms | ratio to node 1 accepting them |',
    '|---|---|---|',
    `| node 1 accepted all (verify + persist) | ${accepted.toFixed(0)} | 1.00 |`,
    ...reached.map((ms, i) => `| node ${i + 1} has all | ${ms.toFixed(0)} | ${(ms / accepted).toFixed(2)} |`),
    `| all 5 nodes have all | ${all.toFixed(0)} | ${(all / accepted).toFixed(2)} |`,
  ].join('\n')
  console.log(body)
  recordResults('Replication to 5 nodes (bench/p2p-propagation.ts)', body)
} finally {
  for (const n of nodes) await n.stop('SIGKILL')
  for (const c of cleanups.reverse()) await c()
  for (const fe of envs) rmSync(fe.dir, { recursive: true, force: true })
}
