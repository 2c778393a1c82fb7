import t from 'tap'
import fc from 'fast-check'
import { place, type NodeCandidate, type PlacementRequest } from '../../plugins/instances/index.js'

const now = 1_000_000
const opts = { now, heartbeatTimeoutMs: 30_000 }
const node = (id: string, extra: Partial<NodeCandidate> = {}): NodeCandidate => ({
  id,
  capacity: { vcpus: 4, memoryMb: 8192, diskGb: 100 },
  used: { vcpus: 0, memoryMb: 0, diskGb: 0 },
  heartbeat: now,
  ...extra,
})
const req = (extra: Partial<PlacementRequest> = {}): PlacementRequest => ({ seed: 'build-1', replicas: 2, resources: { vcpus: 1, memoryMb: 512, diskGb: 5 }, ...extra })

t.test('replicas go to distinct live nodes with room', async (t) => {
  const r = place(req({ replicas: 3 }), [node('a'), node('b'), node('c', { heartbeat: now - 60_000 }), node('d', { used: { vcpus: 4, memoryMb: 0, diskGb: 0 } })], opts)
  t.same(r.nodes.slice().sort(), ['a', 'b'])
  t.equal(r.unplaced, 1)
  t.same(r.skipped, [
    { node: 'c', reason: 'no heartbeat for 60s' },
    { node: 'd', reason: 'needs 1 vCPU, 0 free' },
  ])
})

t.test('nodes that hold the image come first', async (t) => {
  const nodes = ['a', 'b', 'c', 'd'].map((id) => node(id, { images: id === 'c' || id === 'd' ? ['sha256:img'] : [] }))
  t.same(place(req({ image: 'sha256:img' }), nodes, opts).nodes.slice().sort(), ['c', 'd'])
})

t.test('GPU needs are matched by model and count', async (t) => {
  const nodes = [node('a', { capacity: { vcpus: 4, memoryMb: 8192, diskGb: 100, gpus: { a100: 1 } } }), node('b', { capacity: { vcpus: 4, memoryMb: 8192, diskGb: 100, gpus: { a100: 2 } } })]
  const r = place(req({ replicas: 2, gpu: { model: 'a100', count: 2 } }), nodes, opts)
  t.same(r.nodes, ['b'])
  t.same(r.skipped, [{ node: 'a', reason: 'needs 2 × a100 GPU, 1 free' }])
})

t.test('excluded nodes (already hosting a replica) are not chosen again', async (t) => {
  t.same(place(req({ replicas: 1, exclude: ['a'] }), [node('a'), node('b')], opts).nodes, ['b'])
})

const arbNode = fc.record({
  id: fc.stringMatching(/^[a-f0-9]{6}$/),
  free: fc.integer({ min: 0, max: 8 }),
  stale: fc.boolean(),
  image: fc.boolean(),
})

t.test('properties: deterministic, order-independent, distinct, never over capacity, stale nodes never chosen', async (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(arbNode, { selector: (n) => n.id, maxLength: 12 }), fc.integer({ min: 0, max: 6 }), fc.string(), fc.integer({ min: 1, max: 4 }), (specs, replicas, seed, vcpus) => {
      const nodes = specs.map((s) =>
        node(s.id, { capacity: { vcpus: 8, memoryMb: 1 << 20, diskGb: 1000 }, used: { vcpus: 8 - s.free, memoryMb: 0, diskGb: 0 }, heartbeat: s.stale ? now - 31_000 : now, images: s.image ? ['img'] : [] }),
      )
      const r = req({ replicas, seed, image: 'img', resources: { vcpus, memoryMb: 1, diskGb: 1 } })
      const a = place(r, nodes, opts)
      const b = place(r, [...nodes].reverse(), opts)
      if (JSON.stringify(a) !== JSON.stringify(b)) return false
      if (new Set(a.nodes).size !== a.nodes.length) return false
      const byId = new Map(specs.map((s) => [s.id, s]))
      for (const id of a.nodes) {
        const s = byId.get(id)!
        if (s.stale || s.free < vcpus) return false
      }
      const eligible = specs.filter((s) => !s.stale && s.free >= vcpus)
      if (a.nodes.length !== Math.min(replicas, eligible.length)) return false
      // every chosen node without the image is only chosen when all image holders are taken
      const holders = eligible.filter((s) => s.image).length
      return a.nodes.slice(0, Math.min(holders, replicas)).every((id) => byId.get(id)!.image)
    }),
    { numRuns: 500 },
  )
})
