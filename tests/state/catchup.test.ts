import t from 'tap'
import { createClient } from '../../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, type Op } from '../../plugins/state/lib/op.js'
import { admit, joinEnv, makeEnv, startNode, until, type FormEnv, type NodeProcess } from '../helpers/form.js'

// A node that joins, or comes back after a restart, is caught up by one peer: before, both sides of
// every new connection started a full reconciliation, so a node received the gap once per peer (and
// twice from each).

interface SyncStats {
  syncSentTo: Record<string, number>
  syncDeliveredOps: number
  syncDeclined: number
  peers: string[]
}

const N = 600
const author = authorFromKeys(generateAuthorKeys())
let written = 0
const ops = (n: number): Op[] => Array.from({ length: n }, () => createOp(author, 'dns', `${author.address}/c${written}`, { i: written++ }, { ms: Date.now(), n: 0 }))
const client = (fe: FormEnv) => createClient({ socket: fe.socket, timeoutMs: 30_000 })
const syncStats = (fe: FormEnv) => client(fe).get<SyncStats>('/v1/state/sync')
const count = async (fe: FormEnv) => (await client(fe).get<{ records: unknown[] }>(`/v1/state/records/dns?prefix=${author.address}/&limit=10000`)).records.length
const write = async (fe: FormEnv, batch: Op[]) => {
  for (let i = 0; i < batch.length; i += 200) await client(fe).post('/v1/state/ops', { ops: batch.slice(i, i + 200) })
}

/** Operations each of `senders` sent `peerId` by anti-entropy since `before`. */
const sentTo = (before: SyncStats[], after: SyncStats[], peerId: string) => after.map((s, i) => (s.syncSentTo[peerId] ?? 0) - (before[i].syncSentTo[peerId] ?? 0))

t.test('a joining node and a restarted one take their catch-up from one peer, not from all', async (t) => {
  const envs = [await makeEnv(t)]
  const nodes: NodeProcess[] = [await startNode(envs[0])]
  t.teardown(() => Promise.all(nodes.map((n) => n.stop('SIGKILL'))))
  const boot = (await client(envs[0]).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  for (let i = 1; i < 4; i++) envs.push(await makeEnv(t, { FORM_BOOTSTRAP: boot, ...(await joinEnv(envs[0])) }))
  for (let i = 1; i < 3; i++) nodes.push(await startNode(envs[i]))
  await admit(envs[0], envs[1], envs[2])
  const senders = envs.slice(0, 3)
  await until('a mesh of the first three', async () => ((await Promise.all(senders.map(syncStats))).every((s) => s.peers.length === 2) ? true : undefined), 60_000)
  await write(envs[0], ops(N))
  for (const fe of senders) await until(`node to have the first ${N}`, async () => ((await count(fe)) === N ? true : undefined), 60_000)

  // joining: node 4 starts and connects to all three (reconciliation does not wait for admission)
  let before = await Promise.all(senders.map(syncStats))
  nodes.push(await startNode(envs[3]))
  await admit(envs[0], envs[3])
  const joiner = (await client(envs[3]).get<{ peerId: string }>('/v1/net/p2p')).peerId
  await until('node 4 to catch up', async () => ((await count(envs[3])) === N ? true : undefined), 60_000)
  await until('node 4 connected to all three', async () => ((await syncStats(envs[3])).peers.length === 3 ? true : undefined), 60_000)
  // rounds on the other connections (fingerprints only by now) end within a few seconds
  await new Promise((r) => setTimeout(r, 3000))
  let sent = sentTo(before, await Promise.all(senders.map(syncStats)), joiner)
  let total = sent.reduce((a, b) => a + b, 0)
  t.equal(sent.filter((n) => n >= N / 2).length, 1, `one peer sent the joining node the log (operations sent by anti-entropy per peer: ${sent.join(', ')})`)
  t.ok(Math.max(...sent) <= N + 50, `no peer sent the joining node the log twice (per peer: ${sent.join(', ')})`)
  // What the joining node took in by anti-entropy (its process is new: its counters start at 0): 608 for
  // 600 in 18 of 19 runs (CI included). Once a second peer sent the last 98 of the gap after the first had sent it all,
  // with no round declined (perhaps a round cut short: frames written but never read). The bound is the
  // issue's 1.5 deliveries per operation, tightened to 1.25: the gap sent twice (1,200) fails it.
  let received = (await syncStats(envs[3])).syncDeliveredOps
  t.ok(received >= N && received <= 1.25 * N, `the joining node received the ${N} operations about once (${received} received by anti-entropy; ${total} sent)`)
  t.comment(`join: sent by peer ${sent.join(', ')}; node 4 declined ${(await syncStats(envs[3])).syncDeclined} concurrent rounds`)

  // returning: node 4 stops, N more are written, it starts again with its store
  await nodes[3].stop('SIGTERM')
  await write(envs[0], ops(N))
  for (const fe of senders) await until(`node to have all ${2 * N}`, async () => ((await count(fe)) === 2 * N ? true : undefined), 60_000)
  before = await Promise.all(senders.map(syncStats))
  nodes[3] = await startNode(envs[3])
  await until('node 4 to catch up again', async () => ((await count(envs[3])) === 2 * N ? true : undefined), 60_000)
  await until('node 4 connected to all three again', async () => ((await syncStats(envs[3])).peers.length === 3 ? true : undefined), 60_000)
  await new Promise((r) => setTimeout(r, 3000))
  sent = sentTo(before, await Promise.all(senders.map(syncStats)), joiner)
  total = sent.reduce((a, b) => a + b, 0)
  t.equal(sent.filter((n) => n >= N / 2).length, 1, `one peer sent the returning node its gap (per peer: ${sent.join(', ')})`)
  t.ok(Math.max(...sent) <= N + 50, `no peer sent the returning node its gap twice (per peer: ${sent.join(', ')})`)
  received = (await syncStats(envs[3])).syncDeliveredOps
  t.ok(received >= N && received <= 1.25 * N, `the returning node received the ${N} new operations about once (${received} received by anti-entropy; ${total} sent)`)
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')))
})
