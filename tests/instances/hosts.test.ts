import t from 'tap'
import { desiredEntries, hasQuorum, hostsOf } from '../../plugins/instances/index.js'
import type { StateRecord } from '../../plugins/state/index.js'

/** Fallbacks that follow the network and fencing: what every node computes from records and liveness. */

const now = 50_000_000
const WINDOW = 20_000
const addr = (c: string) => `0x${c.repeat(40)}`
const [A, B, C, D, E] = ['a', 'b', 'c', 'd', 'e'].map(addr)
const OWNER = addr('f')
const rec = (collection: string, key: string, value: unknown): StateRecord => ({ collection, key, value, deleted: false, hash: key, t: { ms: 0, counter: 0, node: '' } as never, author: '' })
const node = (id: string, capacity = { vcpus: 2, memoryMb: 2048, diskGb: 20 }) => rec('nodes', id, { capacity })
const replica = (id: string, host: string, candidates: string[], extra: Record<string, unknown> = {}) =>
  rec('instances', `${OWNER}/${id}/desired`, { buildId: 'b1', image: '1'.repeat(64), node: host, state: 'running', name: id, vcpus: 1, memoryMb: 512, diskGb: 2, candidates, failoverMs: WINDOW, ...extra })
/** Liveness as one node holds it: `gone` were last heard from longer ago than the window. */
const beats = (members: string[], gone: string[] = []) => new Map(members.map((n) => [n, gone.includes(n) ? now - WINDOW - 1 : now - 1000]))

t.test('a node that joined after the ship takes a replica of a dead node', async (t) => {
  // shipped when only A and B existed: B's replica has A as its one candidate, and A already runs the build's other replica
  const records = [replica('web-1', A, [A, B]), replica('web-2', B, [A, B])]
  const entries = desiredEntries(records)
  const nodes = [node(A), node(B), node(D)]
  t.equal(hostsOf(entries, beats([A, B, D]), now, { nodes }).get(`${OWNER}/web-2`), B, 'B alive: it stays')
  const hosts = hostsOf(entries, beats([A, B, D], [B]), now, { nodes })
  t.equal(hosts.get(`${OWNER}/web-2`), D, 'B gone: D, which joined later, runs it (A runs web-1 already)')
  t.equal(hosts.get(`${OWNER}/web-1`), A)
  t.equal(hostsOf(entries, beats([A, B, D], [B]), now).get(`${OWNER}/web-2`), B, "without the nodes' records only shipped candidates count: none is free, it stays")
  t.equal(hostsOf(entries, beats([A, B, D], [B, D]), now, { nodes }).get(`${OWNER}/web-2`), B, 'no live member free: it stays on B (and waits)')
})

t.test('a candidate without room passes the replica to the next', async (t) => {
  const records = [replica('web-1', A, [A, B, C])]
  // B is full: another owner's instance holds its memory
  const full = rec('instances', `${addr('9')}/db/desired`, { buildId: 'other', image: '2'.repeat(64), node: B, state: 'running', name: 'db', vcpus: 1, memoryMb: 1800, diskGb: 2 })
  const nodes = [node(A), node(B), node(C)]
  const live = beats([A, B, C], [A])
  t.equal(hostsOf(desiredEntries(records), live, now, { nodes }).get(`${OWNER}/web-1`), B, 'B has room: first candidate')
  t.equal(hostsOf(desiredEntries([...records, full]), live, now, { nodes }).get(`${OWNER}/web-1`), C, 'B lacks memory: C, the next')
  const stopped = rec('instances', full.key, { ...(full.value as object), state: 'stopped' })
  t.equal(hostsOf(desiredEntries([...records, stopped]), live, now, { nodes }).get(`${OWNER}/web-1`), B, 'a stopped instance holds only its disk')
  // two replicas of dead nodes compete for one node's room: the first (by id) gets it, the second goes on
  const small = node(C, { vcpus: 1, memoryMb: 1024, diskGb: 20 })
  const two = [replica('api-1', A, [C, D, E], { buildId: 'b2' }), replica('web-1', B, [C, D, E])]
  const hosts = hostsOf(desiredEntries(two), beats([A, B, C, D, E], [A, B]), now, { nodes: [node(A), node(B), small, node(D), node(E)] })
  t.same([hosts.get(`${OWNER}/api-1`), hosts.get(`${OWNER}/web-1`)], [C, D], 'C fills up with api-1; web-1 passes to D')
})

t.test('a node that sees only a minority fences the replicas the other side takes over', async (t) => {
  const records = [replica('web-1', C, [A, B, C]), replica('web-2', A, [A, B, C])]
  const entries = desiredEntries(records)
  const nodes = [node(A), node(B), node(C)]
  // C is cut off: it hears from nobody; A and B hear from each other, not from C
  const onC = beats([A, B, C], [A, B])
  const onA = beats([A, B, C], [C])
  t.notOk(hasQuorum(C, onC, now, WINDOW), 'C sees 1 of 3')
  t.ok(hasQuorum(A, onA, now, WINDOW), 'A sees 2 of 3')
  const fromA = hostsOf(entries, onA, now, { nodes, self: A })
  const fromC = hostsOf(entries, onC, now, { nodes, self: C })
  t.equal(fromA.get(`${OWNER}/web-1`), B, 'the majority moves web-1 to B')
  t.not(fromC.get(`${OWNER}/web-1`), C, 'C stops running web-1')
  t.not(fromC.get(`${OWNER}/web-2`), C, 'and does not take over web-2 from A, which it cannot see')
  const runners = (id: string) => [A, B, C].filter((n) => (n === C ? fromC : hostsOf(entries, onA, now, { nodes, self: n })).get(`${OWNER}/${id}`) === n)
  t.same(runners('web-1'), [B], 'one copy of web-1 during the partition')
  t.same(runners('web-2'), [A], 'one copy of web-2 during the partition')
  t.equal(hostsOf(entries, onC, now, { nodes }).get(`${OWNER}/web-1`), C, 'without self (no fencing) C would have kept it')
  // healed: all see all; web-1 returns to C, its chosen node
  const healed = beats([A, B, C])
  t.same([A, B, C].map((n) => hostsOf(entries, healed, now, { nodes, self: n }).get(`${OWNER}/web-1`)), [C, C, C], 'healed: every node agrees that C runs web-1')
})

t.test('a minority node keeps a replica the other side has no room for', async (t) => {
  const records = [replica('web-1', C, [A, B, C], { memoryMb: 4096 })]
  const nodes = [node(A), node(B), node(C, { vcpus: 2, memoryMb: 8192, diskGb: 20 })]
  const onC = beats([A, B, C], [A, B])
  t.equal(hostsOf(desiredEntries(records), onC, now, { nodes, self: C }).get(`${OWNER}/web-1`), C, 'nobody there could take it: C keeps it')
  t.equal(hostsOf(desiredEntries(records), beats([A, B, C], [C]), now, { nodes, self: A }).get(`${OWNER}/web-1`), C, 'and the majority leaves it on C')
})

t.test('quorum: an even split goes to the half with the lowest address; a lone node has its own', async (t) => {
  t.ok(hasQuorum(A, beats([A, B], [B]), now, WINDOW), 'A (lowest) of two keeps quorum')
  t.notOk(hasQuorum(B, beats([A, B], [A]), now, WINDOW), 'B of two does not')
  t.ok(hasQuorum(A, new Map(), now, WINDOW), 'a one-node network')
  t.ok(hasQuorum(C, beats([A, B, C, D, E], [D, E]), now, WINDOW), '3 of 5')
  t.notOk(hasQuorum(C, beats([A, B, C, D, E], [A, B, D]), now, WINDOW), '2 of 5')
  t.ok(hasQuorum(C, beats([A, B, C], [A, B]), -Infinity, WINDOW), 'startup grace (now = -Infinity): everyone counts as seen')
})
