import t from 'tap'
import type { StateRecord } from '../../plugins/state/index.js'
import { until } from '../helpers/form.js'
import { api, heartbeatsAfter, startNetwork } from '../helpers/network.js'

// Issue 18's done-when: 5 node processes heartbeating every second for 2 minutes. Each heartbeat
// used to be a durable operation kept forever (the log grew by 5 a second); now the store holds
// one operation per record and heartbeats are never stored.
const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 5000\n'
const RUN_MS = 120_000
const SLACK = 2

interface Storage {
  records: number
  tombstones: number
  ops: number
  opBytes: number
}

t.test('5 nodes with a 1 s heartbeat for 2 minutes: stored operations stay at live records + tombstones', async (t) => {
  const net = await startNetwork(t, 5, FAST)
  const storage = async () => Promise.all(net.envs.map(async (fe) => (await api(fe).get<{ storage: Storage }>('/v1/state/info')).storage))
  const nodeHashes = async () => Promise.all(net.envs.map(async (fe) => (await api(fe).get<{ records: StateRecord[] }>('/v1/state/records/nodes')).records.map((r) => `${r.key}:${r.hash}`).sort()))
  // The node records settle once each node has published its peer id, addresses and formnet
  // fields, and every node holds the same ones. Nodes that join before they are admitted can claim
  // the same formnet subnet (about 2% of 5-node networks); the later claim then moves and rewrites
  // its node record, which is a change of content, not a heartbeat.
  await heartbeatsAfter(net.envs[0], net.addresses, Date.now())
  let startHashes: string[][] = []
  await until('the same node records, with distinct formnet subnets, on every node, twice 3 s apart', async () => {
    const records = await Promise.all(net.envs.map(async (fe) => (await api(fe).get<{ records: StateRecord[] }>('/v1/state/records/nodes')).records))
    const subnets = records[0].map((r) => (r.value as { formnet?: { subnet?: string } }).formnet?.subnet)
    const hashes = records.map((rs) => rs.map((r) => `${r.key}:${r.hash}`).sort())
    const agreed = subnets.every(Boolean) && new Set(subnets).size === net.envs.length && hashes.every((h) => JSON.stringify(h) === JSON.stringify(hashes[0]))
    const stable = agreed && JSON.stringify(hashes) === JSON.stringify(startHashes)
    startHashes = agreed ? hashes : []
    if (!stable) await new Promise((r) => setTimeout(r, 3000))
    return stable ? true : undefined
  })
  const start = await storage()
  const began = Date.now()
  let worst = 0
  for (let sample = 0; Date.now() - began < RUN_MS; sample++) {
    await new Promise((r) => setTimeout(r, 10_000))
    for (const [i, s] of (await storage()).entries()) {
      worst = Math.max(worst, s.ops - (s.records + s.tombstones))
      t.ok(s.ops <= s.records + s.tombstones + SLACK, `sample ${sample}, node ${i + 1}: ${s.ops} ops stored for ${s.records} records + ${s.tombstones} tombstones`)
    }
  }
  const end = await storage()
  for (const [i, s] of end.entries()) {
    t.ok(s.ops - start[i].ops <= SLACK, `node ${i + 1}: ${start[i].ops} ops stored at the start, ${s.ops} after ${Math.round((Date.now() - began) / 1000)} s (${s.opBytes} bytes)`)
  }
  t.same(await nodeHashes(), startHashes, 'no node record was rewritten: heartbeats are not stored')
  // and liveness still works: every node hears every other's heartbeats
  const now = Date.now()
  for (const fe of net.envs) await heartbeatsAfter(fe, net.addresses, now)
  t.pass(`every node heard fresh heartbeats from all 5; worst ops beyond records + tombstones: ${worst}`)
})
