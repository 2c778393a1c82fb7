import t from 'tap'
import fc from 'fast-check'
import { planShip, replicaProgress, shortfallNote, type ShipInput } from '../../plugins/pack/lib/ship.js'
import { hostsOf, desiredEntries } from '../../plugins/instances/index.js'
import type { StateRecord } from '../../plugins/state/index.js'

const now = 10_000_000
const addr = (c: string) => `0x${c.repeat(40)}`
const [A, B, C, D] = ['a', 'b', 'c', 'd'].map(addr)
const OWNER = addr('e')
const BUILD = 'f'.repeat(64)
const IMAGE = '1'.repeat(64)
const rec = (collection: string, key: string, value: unknown): StateRecord => ({ collection, key, value, deleted: false, hash: key, t: { ms: 0, counter: 0, node: '' } as never, author: '' })
const nodeRec = (id: string, beatAgo = 0, capacity = { vcpus: 4, memoryMb: 4096, diskGb: 50 }) => rec('nodes', id, { capacity, heartbeat: now - beatAgo })
/** The liveness a node would report had it received each record's heartbeat when the record says (arrival = heartbeat). */
const heartbeats = (nodes: StateRecord[]) => new Map(nodes.map((r) => [r.key, (r.value as { heartbeat: number }).heartbeat]))
const input = (extra: Partial<ShipInput> = {}): ShipInput => ({
  owner: OWNER,
  build: BUILD,
  name: 'web',
  image: IMAGE,
  resources: { vcpus: 1, memoryMb: 1024, diskGb: 5 },
  replicas: 2,
  failoverMs: 30_000,
  imageHolders: [],
  nodes: [nodeRec(A), nodeRec(B), nodeRec(C)],
  instances: [],
  now,
  ...extra,
  seen: extra.seen ?? heartbeats(extra.nodes ?? [nodeRec(A), nodeRec(B), nodeRec(C)]),
})
/** The desired records a plan writes, as state would then hold them. */
const apply = (plan: ReturnType<typeof planShip>, before: StateRecord[] = []) => {
  const byKey = new Map(before.map((r) => [r.key, r]))
  for (const w of plan.writes) byKey.set(`${OWNER}/${w.id}/desired`, rec('instances', `${OWNER}/${w.id}/desired`, w.desired))
  return [...byKey.values()]
}

t.test('ship places replicas on distinct live nodes, builder first, and records fallbacks', async (t) => {
  const plan = planShip(input({ imageHolders: [C], nodes: [nodeRec(A), nodeRec(B), nodeRec(C), nodeRec(D, 60_000)] }))
  t.same(plan.writes.map((w) => [w.id, w.action]), [['web-1', 'create'], ['web-2', 'create']])
  const nodes = plan.writes.map((w) => w.desired.node)
  t.equal(new Set(nodes).size, 2, 'two different nodes')
  t.equal(nodes[0], C, 'the node that holds the image comes first')
  t.notOk(nodes.includes(D), 'a node without a recent heartbeat gets nothing')
  t.same(plan.writes[0].desired.candidates, plan.writes[1].desired.candidates)
  t.same([...plan.writes[0].desired.candidates!].sort(), [A, B, C].sort(), 'every live fit node is a fallback')
  t.match(plan.writes[0].desired, { buildId: BUILD, image: IMAGE, state: 'running', vcpus: 1, memoryMb: 1024, diskGb: 5, failoverMs: 30_000, name: 'web-1' })
  t.same(planShip(input({ imageHolders: [C], nodes: [nodeRec(A), nodeRec(B), nodeRec(C), nodeRec(D, 60_000)] })), plan, 'deterministic')
})

t.test('capacity used by other instances counts; a full node is skipped with its reason', async (t) => {
  const other = rec('instances', `${addr('9')}/db-1/desired`, { buildId: 'x', image: IMAGE, node: A, state: 'running', name: 'db-1', vcpus: 4, memoryMb: 1024, diskGb: 5 })
  const plan = planShip(input({ replicas: 3, instances: [other] }))
  t.same(plan.writes.map((w) => w.desired.node).sort(), [B, C].sort())
  t.equal(plan.placement.unplaced, 1)
  t.match(plan.placement.skipped, [{ node: A, reason: /needs 1 vCPU, 0 free/ }])
  t.equal(shortfallNote(plan, 3), `only 2 of 3 replicas could be placed: ${A.slice(0, 10)}… needs 1 vCPU, 0 free (a node offers its [node.resources], else its host minus [node.reserve])`)
  t.equal(shortfallNote(planShip(input({ replicas: 2 })), 2), undefined, 'no note when every replica is placed')
  t.throws(() => planShip(input({ resources: { vcpus: 8, memoryMb: 1024, diskGb: 5 } })), { code: 'SHIP_NO_NODES', message: /needs 8 vCPU/ })
  t.throws(() => planShip(input({ resources: { vcpus: 1, memoryMb: 512, diskGb: 5, gpu: { model: 'a100', count: 1 } } })), { code: 'SHIP_NO_NODES', message: /a100 GPU/ })
})

t.test('a one-node network runs one replica and says it lacks nodes, not room', async (t) => {
  // the README walkthrough's `form pack ship`: 3 asked of one node with room to spare
  const plan = planShip(input({ replicas: 3, nodes: [nodeRec(A)] }))
  t.same(plan.writes.map((w) => w.desired.node), [A])
  t.equal(shortfallNote(plan, 3), 'only 1 of 3 replicas could be placed: each replica runs on a node of its own, and the network has no other live node')
})

t.test('shipping again keeps replicas in place, adds and removes to the new count', async (t) => {
  const first = planShip(input({ replicas: 2 }))
  const state = apply(first)
  const again = planShip(input({ replicas: 2, instances: state, image: '2'.repeat(64) }))
  t.same(again.writes.map((w) => [w.id, w.action, w.desired.node, w.desired.image]), first.writes.map((w) => [w.id, 'update', w.desired.node, '2'.repeat(64)]), 'same nodes, new image')
  const more = planShip(input({ replicas: 3, instances: state }))
  t.same(more.writes.map((w) => [w.id, w.action]), [['web-1', 'update'], ['web-2', 'update'], ['web-3', 'create']])
  t.equal(new Set(more.writes.map((w) => w.desired.node)).size, 3)
  const fewer = planShip(input({ replicas: 1, instances: apply(more, state) }))
  t.same(fewer.writes.map((w) => [w.id, w.action, w.desired.state]), [['web-1', 'update', 'running'], ['web-2', 'delete', 'deleted'], ['web-3', 'delete', 'deleted']])
})

t.test('a replica of a gone node moves to the first free live candidate, and back when it returns', async (t) => {
  const plan = planShip(input({ replicas: 2 }))
  const state = apply(plan)
  const [r1, r2] = plan.writes.map((w) => w.desired.node)
  const spare = [A, B, C].find((n) => n !== r1 && n !== r2)!
  const beats = (gone: string[]) => heartbeats([A, B, C].map((n) => nodeRec(n, gone.includes(n) ? 31_000 : 0)))
  const hosts = (gone: string[]) => hostsOf(desiredEntries(state), beats(gone), now)
  t.same([...hosts([]).values()], [r1, r2], 'all alive: where ship put them')
  t.same([...hosts([r1]).values()], [spare, r2], "web-1's node is gone: the spare runs it, never web-2's node")
  t.same([...hosts([r1, spare]).values()], [r1, r2], 'no free live candidate: it stays (and waits)')
  t.same([...hosts([r1, r2]).values()], [spare, r2], 'two gone, one spare: the first replica gets it')
})

t.test('hostsOf: distinct hosts among moved replicas, stable for the same inputs', async (t) => {
  const nodes = ['a', 'b', 'c', 'd', 'e'].map(addr)
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...nodes), { minLength: 1, maxLength: 4 }), fc.subarray(nodes), (primaries, dead) => {
      const records = primaries.map((node, i) =>
        rec('instances', `${OWNER}/r${i}/desired`, { buildId: BUILD, image: IMAGE, node, state: 'running', name: `r${i}`, vcpus: 1, memoryMb: 256, diskGb: 1, candidates: nodes, failoverMs: 30_000 }),
      )
      const beats = new Map(nodes.map((n) => [n, dead.includes(n) ? now - 60_000 : now]))
      const alive = (n: string) => !dead.includes(n)
      const hosts = hostsOf(desiredEntries(records), beats, now, { nodes: nodes.map((n) => nodeRec(n)) })
      const moved = primaries.map((node, i) => [node, hosts.get(`${OWNER}/r${i}`)!]).filter(([from, to]) => from !== to).map(([, to]) => to)
      // a moved replica lands on a live node that nobody else holds
      for (const m of moved) {
        if (!alive(m)) return false
        if ([...hosts.values()].filter((h) => h === m).length !== 1) return false
      }
      // a replica of a live node never moves
      if (primaries.some((node, i) => alive(node) && hosts.get(`${OWNER}/r${i}`) !== node)) return false
      const again = hostsOf(desiredEntries([...records].reverse()), beats, now, { nodes: nodes.map((n) => nodeRec(n)).reverse() })
      return JSON.stringify([...again].sort()) === JSON.stringify([...hosts].sort())
    }),
  )
})

t.test('a shipped replica is ready once it runs and, when its image has checks, is healthy; unhealthy ends the wait', async (t) => {
  const health = (state: 'starting' | 'healthy' | 'unhealthy') => ({ state, since: 1, restarts: 0, checks: 1 })
  t.equal(replicaProgress({ state: 'running' }), 'ready', 'no checks: running is enough')
  t.equal(replicaProgress({ state: 'booting', health: health('starting') }), 'waiting')
  t.equal(replicaProgress({ state: 'running', health: health('starting') }), 'waiting', 'running but not yet passing its checks')
  t.equal(replicaProgress({ state: 'running', health: health('healthy') }), 'ready')
  t.equal(replicaProgress({ state: 'running', health: health('unhealthy') }), 'unhealthy')
  t.equal(replicaProgress({ state: 'failed' }), 'failed')
  t.equal(replicaProgress({ state: 'requested' }), 'waiting')
})

t.test('a replica that needs a GPU goes to the node that offers one', async (t) => {
  const gpuNode = rec('nodes', B, { capacity: { vcpus: 4, memoryMb: 4096, diskGb: 50, gpus: { a100: 1 } }, heartbeat: now })
  const nodes = [nodeRec(A), gpuNode, nodeRec(C)]
  const plan = planShip(input({ nodes, replicas: 1, resources: { vcpus: 1, memoryMb: 1024, diskGb: 5, gpu: { model: 'a100', count: 1 } } }))
  t.same(plan.writes.map((w) => w.desired.node), [B], 'placed on the node whose record offers the GPU')
  t.throws(() => planShip(input({ nodes, replicas: 1, resources: { vcpus: 1, memoryMb: 1024, diskGb: 5, gpu: { model: 'h100', count: 1 } } })), { code: 'SHIP_NO_NODES' }, 'a GPU no node offers places nothing')
})
