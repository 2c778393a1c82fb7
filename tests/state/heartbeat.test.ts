import t from 'tap'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createHeartbeat } from '../../plugins/state/lib/heartbeat.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { allCollections } from '../helpers/collections.js'

const admin = authorFromKeys(generateAuthorKeys())
const member = authorFromKeys(generateAuthorKeys())
const stranger = authorFromKeys(generateAuthorKeys())

t.test('heartbeats make a member alive by arrival time and are never stored', async (t) => {
  let now = 1_000_000
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), admins: [admin.address], self: admin.address, now: () => now })
  t.teardown(() => store.close())
  await store.put(admin, 'members', `${member.address}/${admin.address}`, { status: 'admitted' })
  const opsBefore = store.stats().ops
  const fresh: string[] = []
  store.onHeartbeat((h, source) => fresh.push(`${h.by.address}:${h.ms}:${source}`))

  const beat = createHeartbeat(member, now + 5_000)
  now += 100
  t.equal(store.heartbeat(beat, 'peer-a'), 'fresh', 'a member\'s new heartbeat counts')
  t.equal(store.liveness().get(member.address), now, 'alive as of its arrival, by this node\'s clock')
  t.equal(store.clockReport().offsets[member.address], 4_900, 'and its clock offset is measured')
  now += 1_000
  t.equal(store.heartbeat(beat, 'peer-b'), 'stale', 'the same heartbeat again (from another peer) is stale')
  t.equal(store.liveness().get(member.address), now - 1_000, 'and makes it no more alive')
  t.same(fresh, [`${member.address}:${beat.ms}:peer-a`], 'only the fresh one is announced for forwarding')
  t.equal(store.stats().ops, opsBefore, 'nothing is stored')

  t.equal(store.heartbeat(createHeartbeat(member, beat.ms - 1), 'peer-a'), 'stale', 'an older one (a replay) is stale')
  t.equal(store.heartbeat(createHeartbeat(stranger, now), 'peer-a'), 'ignored', 'a non-member\'s is ignored')
  t.notOk(store.liveness().has(stranger.address))
  t.match(store.heartbeat(createHeartbeat(member, now + 16 * 60_000), 'peer-a'), { invalid: /ahead of this node's clock/ })
  const forged = { ...createHeartbeat(member, now + 10_000), ms: now + 20_000 }
  t.match(store.heartbeat(forged, 'peer-a'), { invalid: /signature/ }, 'a changed heartbeat fails its signature')
  const impostor = { ...createHeartbeat(stranger, now + 10_000), by: member.delegation }
  t.match(store.heartbeat(impostor, 'peer-a'), { invalid: /signature/ }, 'a stranger cannot beat for a member')
  t.match(store.heartbeat({ ...beat, extra: 1 }, 'peer-a'), { invalid: /unknown heartbeat field/ })
  t.match(store.heartbeat('x', 'peer-a'), { invalid: /JSON object/ })
  t.equal(store.liveness().get(member.address), now - 1_000, 'none of them made the member look alive')

  // a restart rewrites the node record: heartbeats start afresh from it, even below the last one
  // (which may have run ahead of the node's clock before the restart)
  now += 1_000
  await store.insert([createOp(member, 'nodes', member.address, { heartbeat: now }, { ms: now - 100, n: 0 })], 'peer-a')
  t.equal(store.heartbeat(createHeartbeat(member, now - 50), 'peer-a'), 'fresh', 'after a new node record, a heartbeat newer than it counts')
  t.equal(store.heartbeat(createHeartbeat(member, now - 200), 'peer-a'), 'stale', 'one older than the record does not')

  // revoked: its heartbeats count no more
  await store.put(admin, 'members', `${member.address}/${admin.address}`, { status: 'revoked' })
  t.equal(store.heartbeat(createHeartbeat(member, now + 1), 'peer-a'), 'ignored')
  t.notOk(store.liveness().has(member.address))
})
