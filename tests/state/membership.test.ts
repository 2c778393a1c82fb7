import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { winners } from '../../plugins/net/lib/formnet/ipam.js'
import { claimsOf } from '../../plugins/net/lib/formnet/peers.js'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, type Op } from '../../plugins/state/lib/op.js'
import { allCollections } from '../helpers/collections.js'

const admins = Array.from({ length: 2 }, () => authorFromKeys(generateAuthorKeys()))
const nodes = Array.from({ length: 3 }, () => authorFromKeys(generateAuthorKeys()))
const impostor = authorFromKeys(generateAuthorKeys())
const SUBNETS = ['10.1.0.0_24', '10.2.0.0_24', '10.3.0.0_24']

// an admission/revocation by an admin (or by an impostor, which must count for nothing), or a
// record governed by membership: a node record or a subnet claim
const arbAction = fc.oneof(
  fc.record({ kind: fc.constant('member' as const), by: fc.integer({ min: 0, max: 2 }), node: fc.integer({ min: 0, max: 2 }), admit: fc.boolean(), ms: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('node' as const), node: fc.integer({ min: 0, max: 2 }), ms: fc.integer({ min: 1, max: 40 }), beat: fc.integer({ min: 0, max: 1000 }) }),
  fc.record({ kind: fc.constant('claim' as const), node: fc.integer({ min: 0, max: 2 }), subnet: fc.integer({ min: 0, max: 2 }), ms: fc.integer({ min: 0, max: 40 }) }),
)

function toOp(a: any): Op {
  if (a.kind === 'member') {
    const by = a.by === 2 ? impostor : admins[a.by]
    return createOp(by, 'members', `${nodes[a.node].address}/${by.address}`, { status: a.admit ? 'admitted' : 'revoked' }, { ms: a.ms, n: 0 })
  }
  const n = nodes[a.node]
  if (a.kind === 'node') return createOp(n, 'nodes', n.address, { heartbeat: a.beat, capacity: { vcpus: 1, memoryMb: 1, diskGb: 1 } }, { ms: a.ms, n: 0 })
  return createOp(n, 'cidrs', `${SUBNETS[a.subnet]}/${n.address}`, { node: n.address, subnet: SUBNETS[a.subnet] }, { ms: a.ms, n: 0 })
}

async function view(store: StateStore) {
  const cidrs = await store.all('cidrs')
  return JSON.stringify({
    members: store.members(),
    nodes: await store.all('nodes'),
    cidrs,
    membersRecords: await store.all('members'),
    subnets: [...winners(claimsOf(cidrs)).entries()].sort(),
  })
}

t.test('random interleavings of admissions, revocations and the records they govern converge on 4 LevelDB replicas', async (t) => {
  const root = t.testdir()
  let run = 0
  await fc.assert(
    fc.asyncProperty(fc.array(arbAction, { minLength: 1, maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 2 ** 31 }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 2 }), async (actions, seeds, threshold) => {
      const ops = actions.map(toOp)
      const stores = await Promise.all(seeds.map((_, i) => StateStore.open({ collections: allCollections, dir: join(root, `run${run}`, `r${i}`), admins: admins.map((a) => a.address), threshold, now: () => 1_000 })))
      run++
      try {
        const views: string[] = []
        for (const [i, store] of stores.entries()) {
          // a deterministic shuffle per replica, some ops delivered twice, in chunks: admissions
          // arrive before, between and after the records they govern
          const delivery = [...ops, ...ops.filter((_, j) => (seeds[i] >> j % 31) & 1)]
          const order = delivery.map((op, j) => ({ op, r: (seeds[i] * (j + 1) * 2654435761) % 4294967296 })).sort((x, y) => x.r - y.r)
          for (let j = 0; j < order.length; j += 4) {
            const r = await store.insert(order.slice(j, j + 4).map((x) => x.op), `peer${i}`)
            if (r.rejected.length) throw new Error(`rejected: ${JSON.stringify(r.rejected)}`)
          }
          views.push(await view(store))
        }
        if (!views.every((v) => v === views[0])) return false
        // what counts is exactly what the members are: every visible node record and claim is a member's
        const store = stores[0]
        const members = new Set(store.members().map((m) => m.address))
        const governed = [...(await store.all('nodes')), ...(await store.all('cidrs'))]
        if (governed.some((r) => !members.has(r.author))) return false
        // the impostor admitted nobody: a node is a member only through the admins' records
        for (const n of nodes) {
          const records = await store.all('members', `${n.address}/`)
          if (records.some((r) => r.author === impostor.address)) return false
          const byAdmins = records.filter((r) => (r.value as { status: string }).status === 'admitted')
          if (members.has(n.address) !== byAdmins.length >= threshold) return false
        }
        return true
      } finally {
        await Promise.all(stores.map((s) => s.close()))
      }
    }),
    { numRuns: 40 },
  )
  t.pass(`${run} runs of 4 replicas converged to the same members, records and subnet owners`)
})

t.test('membership order: genesis admins first, then by the admission that completed the threshold', async (t) => {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), admins: admins.map((a) => a.address), threshold: 2, now: () => 1_000 })
  t.teardown(() => store.close())
  const [x, y] = nodes
  const admitOp = (by: (typeof admins)[0], n: (typeof nodes)[0], ms: number, status = 'admitted') => createOp(by, 'members', `${n.address}/${by.address}`, { status }, { ms, n: 0 })
  await store.insert([admitOp(admins[0], x, 10), admitOp(admins[0], y, 5)], 'p')
  t.notOk(store.isMember(x.address), 'one admission of two needed')
  await store.insert([admitOp(admins[1], x, 20), admitOp(admins[1], y, 30)], 'p')
  t.same(store.members().map((m) => [m.address, m.rank]), [...admins.map((a) => a.address).sort().map((a, i) => [a, i]), [x.address, 2], [y.address, 3]], 'x completed its threshold at 20, y at 30')
  await store.insert([admitOp(admins[1], x, 40, 'revoked')], 'p')
  t.notOk(store.isMember(x.address), 'a revocation by one of the two admits it no more')
  t.equal(store.membership.rank(y.address), 2)
})
