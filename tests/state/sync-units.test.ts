import t, { type Test } from 'tap'
import type { Stream } from '@libp2p/interface'
import { FormError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import { FrameReader } from '../../plugins/net/index.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, opHash, type Op } from '../../plugins/state/lib/op.js'
import { StateStore } from '../../plugins/state/lib/store.js'
import { Announcements, ANNOUNCE_GRACE_MS } from '../../plugins/state/service/sync/announcements.js'
import { AntiEntropyExchange } from '../../plugins/state/service/sync/exchange.js'
import { heartbeatValidator } from '../../plugins/state/service/sync/heartbeats.js'
import { Intake } from '../../plugins/state/service/sync/intake.js'
import { OfferLog } from '../../plugins/state/service/sync/offers.js'
import { Offences, VIOLATION_WEIGHT } from '../../plugins/state/service/sync/offences.js'
import { encodeOpsTo, FRAME, MAX_OPS_PER_FRAME, MAX_OPS_TO_HEADER, OpWriter, opsToHeader, parseHashes, parseOps, parseOpsTo, PUSH_PROTOCOL, PUSH_PROTOCOL_1_0, SYNC_PROTOCOL } from '../../plugins/state/service/sync/protocol.js'
import { Pusher } from '../../plugins/state/service/sync/push.js'
import { AntiEntropyScheduler } from '../../plugins/state/service/sync/scheduler.js'
import { newSyncActivity, newSyncStats } from '../../plugins/state/service/sync/stats.js'
import { allCollections } from '../helpers/collections.js'

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
const author = authorFromKeys(generateAuthorKeys())
const DAY = 86_400_000
const hashOf = (op: Op) => opHash(op)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const opsFor = (n: number, prefix = 'k') => Array.from({ length: n }, (_, i) => createOp(author, 'dns', `${author.address}/${prefix}${i}`, { n: i }, { ms: Date.now() - DAY + i, n: 0 }))

async function openStore(t: Test): Promise<StateStore> {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir() + '/' + Math.random().toString(36).slice(2), tombstoneHorizonMs: 7 * DAY })
  t.teardown(() => store.close())
  return store
}

/** A stream that records the frames written to it (type and payload), and can be told to fail its writes. */
class RecordingStream {
  protocol = ''
  frames: { type: number; payload: Buffer }[] = []
  failWrites = false
  closed = false
  aborted: Error | undefined
  send(b: Uint8Array): boolean {
    if (this.failWrites) throw new Error('stream reset')
    const buf = Buffer.from(b)
    this.frames.push({ type: buf[0], payload: buf.subarray(5, 5 + buf.readUInt32BE(1)) })
    return true
  }
  async onDrain() {}
  async close() {
    this.closed = true
  }
  abort(error: Error) {
    this.aborted = error
  }
}
const asStream = (s: unknown) => s as Stream

/** Two connected in-memory streams: what one sends, the other reads. */
function pipe(): [Stream, Stream] {
  const inbox = () => {
    const queue: Uint8Array[] = []
    let waiting: ((r: IteratorResult<Uint8Array>) => void) | undefined
    let ended = false
    return {
      push(b: Uint8Array) {
        if (waiting) {
          const w = waiting
          waiting = undefined
          w({ value: b, done: false })
        } else queue.push(b)
      },
      end() {
        ended = true
        waiting?.({ value: undefined, done: true })
      },
      next: (): Promise<IteratorResult<Uint8Array>> => (queue.length ? Promise.resolve({ value: queue.shift()!, done: false }) : ended ? Promise.resolve({ value: undefined, done: true }) : new Promise((r) => (waiting = r))),
    }
  }
  const a = inbox()
  const b = inbox()
  const side = (mine: ReturnType<typeof inbox>, theirs: ReturnType<typeof inbox>) =>
    asStream({ send: (x: Uint8Array) => (theirs.push(Buffer.from(x)), true), onDrain: async () => {}, close: async () => theirs.end(), abort: () => theirs.end(), [Symbol.asyncIterator]: () => ({ next: mine.next }) })
  return [side(a, b), side(b, a)]
}
const reader = { reader: (stream: Stream) => new FrameReader(stream, { maxFrame: 1 << 22, timeoutMs: 5000 }) }

t.test('protocol: hash lists and ops frames are checked before use, and the writer splits and counts what it sends', async (t) => {
  const hashes = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)]
  t.same(parseHashes(Buffer.concat(hashes), 2), hashes.map((h) => h.toString('hex')))
  t.throws(() => parseHashes(Buffer.alloc(33), 10), { code: 'P2P_PROTOCOL' }, 'a list that is not whole hashes')
  t.throws(() => parseHashes(Buffer.alloc(96), 2), { code: 'P2P_PROTOCOL', message: /limit is 2/ }, 'more hashes than max_want_ids')
  t.same(parseOps(Buffer.from('[1,{"a":2}]')), [1, { a: 2 }])
  t.throws(() => parseOps(Buffer.from('{')), { code: 'P2P_PROTOCOL', message: /not JSON/ })
  t.throws(() => parseOps(Buffer.from('{"a":1}')), { code: 'P2P_PROTOCOL', message: /JSON array/ })

  const stats = { syncBytes: 0 }
  const ops = opsFor(10)
  const oneSize = Buffer.byteLength(JSON.stringify(ops[0])) + 1
  const writer = new OpWriter(oneSize * 3 + 2, stats)
  const stream = new RecordingStream()
  await writer.sendOps(asStream(stream), ops)
  t.ok(stream.frames.length >= 4, `10 operations in frames of about 3: ${stream.frames.length} frames`)
  t.ok(stream.frames.every((f) => f.type === FRAME.ops))
  t.same(stream.frames.flatMap((f) => JSON.parse(f.payload.toString())), JSON.parse(JSON.stringify(ops)), 'every operation once, in order')
  t.equal(stats.syncBytes, stream.frames.reduce((n, f) => n + f.payload.length, 0), 'payload bytes counted')
})

t.test('protocol: an opsTo frame carries a bounded list of peer ids, then ops; anything else in it is a violation', async (t) => {
  const ops = opsFor(2, 'to')
  const header = opsToHeader(['12D3KooWA', 'QmB', 'bafzC'])!
  const frame = encodeOpsTo(header, Buffer.from(JSON.stringify(ops)))
  t.same(parseOpsTo(frame), { to: ['12D3KooWA', 'QmB', 'bafzC'], ops: JSON.parse(JSON.stringify(ops)) })
  t.equal(opsToHeader(Array.from({ length: 100 }, (_, i) => `12D3KooW${'x'.repeat(44)}${i}`)), undefined, 'a list too long to carry is not sent')
  const raw = (header: string, rest = '[]', length = Buffer.byteLength(header)) => {
    const out = Buffer.alloc(4)
    out.writeUInt32BE(length)
    return Buffer.concat([out, Buffer.from(header), Buffer.from(rest)])
  }
  const bad: [Buffer, RegExp][] = [
    [Buffer.alloc(3), /peer list must be at most/],
    [raw('["a"]', '[]', 50), /inside the frame/],
    [raw('x'.repeat(MAX_OPS_TO_HEADER + 1)), /at most 3000 bytes/],
    [raw('["a"'), /not JSON/],
    [raw('{"a":1}'), /array of peer ids/],
    [raw('[1]'), /array of peer ids/],
    [raw('["a b"]'), /array of peer ids/],
    [raw(JSON.stringify(['x'.repeat(129)])), /array of peer ids/],
    [raw('["a"]', '{}'), /JSON array/],
  ]
  for (const [payload, message] of bad) t.throws(() => parseOpsTo(payload), { code: 'P2P_PROTOCOL', message }, String(message))
  const writer = new OpWriter(Buffer.byteLength(JSON.stringify(ops[0])) + header.length + 8, { syncBytes: 0 })
  const frames = writer.encodeTo(ops, header)
  t.equal(frames.length, 2, 'the peer list counts towards the frame size: one operation a frame here')
  t.same(frames.flatMap((f) => parseOpsTo(f).ops), JSON.parse(JSON.stringify(ops)))
})

t.test('offer log: a peer counts as having an operation it sent or was offered, within the push window only', async (t) => {
  const offers = new OfferLog(80)
  offers.stored('h1', Date.now(), 'peerA')
  offers.stored('h2', Date.now())
  offers.offer('h2', 'peerB')
  offers.offer('unknown', 'peerB')
  t.ok(offers.offeredRecently('h1', 'peerA'), 'the peer it came from has it')
  t.notOk(offers.offeredRecently('h1', 'peerB'))
  t.ok(offers.offeredRecently('h2', 'peerB'), 'offered by push')
  t.notOk(offers.has('unknown'), 'offering an operation never stored records nothing')
  t.ok(offers.has('h1'))
  await sleep(120)
  t.notOk(offers.offeredRecently('h2', 'peerB'), 'forgotten once older than the window (the anti-entropy interval here)')
  t.notOk(offers.has('h1'), 'older entries are dropped as well')
  offers.stored('h3', Date.now(), 'peerA', new Set(['peerC']))
  t.ok(offers.offeredRecently('h3', 'peerC'), 'a peer the sender named has it too')
  t.notOk(offers.offeredRecently('h3', 'peerD'))
})

function fakeBans() {
  const bans: { peer: string; ms: number; reason: string }[] = []
  const counted: string[] = []
  return { bans, counted, p2p: { ban: async (peer: unknown, ms: number, reason: string) => void bans.push({ peer: String(peer), ms, reason }), count: (limit: string) => void counted.push(limit) } }
}

t.test('offences: a peer is banned once its offences pass max_invalid_ops; a malformed frame weighs more, other failures nothing', async (t) => {
  const f = fakeBans()
  const stats = newSyncStats()
  const offences = new Offences(f.p2p, { max_invalid_ops: 6, ban_ms: 1234 }, stats, log)
  await offences.strike('p', 3, 'three bad ops')
  await offences.strike('p', 3, 'three more')
  t.equal(f.bans.length, 0, 'at the limit, not past it')
  await t.rejects(offences.guarded('q', async () => Promise.reject(new Error('timeout'))), /timeout/)
  t.same(offences.byPeer(), { p: 6 }, 'an error that is no protocol violation is not counted')
  await t.rejects(
    offences.guarded('q', async () => {
      throw new FormError('P2P_PROTOCOL', 'garbage')
    }),
    { code: 'P2P_PROTOCOL' },
    'rethrown',
  )
  t.same(offences.byPeer(), { p: 6, q: VIOLATION_WEIGHT })
  t.same(f.counted, ['malformed_frames'])
  t.equal(stats.malformedFrames, 1)
  t.equal(await offences.guarded('q', async () => 42), 42)
  await offences.strike('p', 1, 'one more')
  t.equal(f.bans.length, 1)
  t.match(f.bans[0], { peer: 'p', ms: 1234, reason: /^one more; 7 offences, the limit is 6/ })
  t.equal(stats.bans, 1)
})

t.test('intake: operations from a peer are stored and counted; invalid ones count against the peer; an oversized batch is a violation', async (t) => {
  const store = await openStore(t)
  const f = fakeBans()
  const stats = newSyncStats()
  const activity = newSyncActivity()
  const offences = new Offences(f.p2p, { max_invalid_ops: 1, ban_ms: 1000 }, stats, log)
  const intake = new Intake(store, activity, stats, offences, log)
  const ops = opsFor(3)
  await intake.receive(ops, 'peerA', 'sync')
  t.equal(stats.receivedOps, 3)
  t.equal(stats.syncDeliveredOps, 3)
  t.equal(activity.lastPush, 0, 'anti-entropy deliveries do not count as push')
  t.ok(activity.lastDelivery > 0)
  t.equal(activity.receiving, 0, 'released after the insert')
  t.same((await store.getOps([hashOf(ops[1])]))[0], ops[1], 'stored')
  await intake.receive([ops[0], { ...ops[1], sig: 'AA' }, { nonsense: true }], 'peerB', 'push')
  t.equal(stats.duplicateOps, 1)
  t.equal(stats.rejectedOps, 2)
  t.ok(activity.lastPush > 0, 'push deliveries mark push busy')
  t.same(offences.byPeer(), { peerB: 2 })
  t.equal(f.bans.length, 1, 'two invalid operations pass a limit of one')
  await t.rejects(intake.receive(new Array(MAX_OPS_PER_FRAME + 1).fill({}), 'peerA', 'push'), { code: 'P2P_PROTOCOL' })
  // the peers the sender named reach the store's listeners (push leaves them out of its announcements)
  const heard: [string | undefined, ReadonlySet<string> | undefined][] = []
  const off = store.onOps((_, source, sentTo) => heard.push([source, sentTo]))
  const named = new Set(['peerC'])
  await intake.receive(opsFor(2, 'named'), 'peerA', 'push', named)
  await intake.receive(opsFor(1, 'plain'), 'peerA', 'push')
  off()
  t.same(heard, [['peerA', named], ['peerA', undefined]])
  t.equal(heard[0][1], named)
})

/** Peers that speak both push versions unless `speaks` says otherwise; open negotiates like libp2p (the first protocol offered that the peer speaks). */
function fakePushNet(connected: string[], members: string[], speaks: (peer: string) => string[] = () => [PUSH_PROTOCOL, PUSH_PROTOCOL_1_0]) {
  const streams: { peer: string; protocol: string; stream: RecordingStream }[] = []
  let failNext = 0
  const p2p = {
    connectedPeers: () => connected,
    open: async (peer: unknown, offered: string | string[]) => {
      const protocol = [offered].flat().find((p) => speaks(String(peer)).includes(p))
      if (!protocol) throw new Error(`${String(peer)} speaks none of ${offered}`)
      const stream = new RecordingStream()
      stream.protocol = protocol
      if (failNext > 0) {
        failNext--
        stream.failWrites = true
      }
      streams.push({ peer: String(peer), protocol, stream })
      return asStream(stream)
    },
  }
  const store = { memberOfPeer: (peer: string) => (members.includes(peer) ? `addr-${peer}` : undefined) }
  return { p2p, store, streams, failOpens: (n: number) => (failNext = n), framesTo: (peer: string) => streams.filter((s) => s.peer === peer).flatMap((s) => s.stream.frames) }
}

t.test('push: own operations go whole to every connected member, relayed ones are announced by hash but not to their source, strangers get nothing', async (t) => {
  const net = fakePushNet(['A', 'B', 'stranger'], ['A', 'B', 'C'])
  const stats = newSyncStats()
  const activity = newSyncActivity()
  const offers = new OfferLog(30_000)
  const pusher = new Pusher(net.p2p, net.store, offers, new OpWriter(1 << 20, stats), activity, stats, log)
  const [own, relayed] = opsFor(2)
  offers.stored(hashOf(own), Date.now())
  offers.stored(hashOf(relayed), Date.now(), 'A')
  pusher.push([{ hash: hashOf(own), op: own }], 'local')
  pusher.push([{ hash: hashOf(relayed), op: relayed }], 'A')
  await pusher.stop()
  t.same(net.framesTo('stranger'), [], 'a peer that is no member is not pushed to')
  t.ok(net.streams.every((s) => s.protocol === PUSH_PROTOCOL))
  t.equal(net.streams.length, 2, 'one stream per member peer, reused across batches')
  const a = net.framesTo('A')
  const b = net.framesTo('B')
  t.same(a.filter((f) => f.type === FRAME.opsTo).flatMap((f) => (parseOpsTo(f.payload).ops as Op[]).map(hashOf)), [hashOf(own)])
  t.same(a.filter((f) => f.type === FRAME.opsTo).map((f) => parseOpsTo(f.payload).to), [['A', 'B']], 'naming every member it goes to')
  t.same(a.filter((f) => f.type === FRAME.have), [], 'the peer a relayed operation came from is not told of it')
  t.same(b.filter((f) => f.type === FRAME.have).map((f) => f.payload.toString('hex')), [hashOf(relayed)], 'announced by hash')
  t.same(b.filter((f) => f.type === FRAME.opsTo).flatMap((f) => (parseOpsTo(f.payload).ops as Op[]).map(hashOf)), [hashOf(own)], 'a relayed operation is not sent whole')
  t.equal(stats.pushedOps, 2, 'own operation to two peers')
  t.equal(stats.announcedOps, 1)
  t.ok(activity.lastPush > 0)
  t.ok(offers.offeredRecently(hashOf(own), 'A') && offers.offeredRecently(hashOf(own), 'B') && offers.offeredRecently(hashOf(relayed), 'B'), 'what was offered is remembered')
  t.ok(net.streams.every((s) => s.stream.closed), 'stop closes the push streams')
})

t.test("push: a relayed operation is announced only to peers its author's node did not name, and not at all in a full mesh", async (t) => {
  const net = fakePushNet(['A', 'B', 'C', 'D'], ['A', 'B', 'C', 'D'])
  const stats = newSyncStats()
  const offers = new OfferLog(30_000)
  const pusher = new Pusher(net.p2p, net.store, offers, new OpWriter(1 << 20, stats), newSyncActivity(), stats, log)
  const [partial, full, unnamed] = opsFor(3, 'relay')
  // as the store hands them on: from A, which said it pushed them to B and C, to everyone, or said nothing
  offers.stored(hashOf(partial), Date.now(), 'A', new Set(['B', 'C']))
  pusher.push([{ hash: hashOf(partial), op: partial }], 'A', new Set(['B', 'C']))
  pusher.push([{ hash: hashOf(full), op: full }], 'A', new Set(['A', 'B', 'C', 'D']))
  pusher.push([{ hash: hashOf(unnamed), op: unnamed }], 'A')
  await pusher.stop()
  const announcedTo = (peer: string) => net.framesTo(peer).filter((f) => f.type === FRAME.have).flatMap((f) => parseHashes(f.payload, 100))
  t.same(announcedTo('A'), [], 'not to the source')
  t.same(announcedTo('B').sort(), [hashOf(unnamed)], 'a named peer is not told')
  t.same(announcedTo('C').sort(), [hashOf(unnamed)])
  t.same(announcedTo('D').sort(), [hashOf(partial), hashOf(unnamed)].sort(), 'the peer nobody named is told')
  t.equal(stats.announcedOps, 4)
  t.ok(offers.offeredRecently(hashOf(partial), 'D'), 'what was announced counts as offered')
})

t.test('push: a peer that speaks only push 1.0 gets plain ops frames, one that speaks 1.1 gets opsTo frames', async (t) => {
  const net = fakePushNet(['old', 'new'], ['old', 'new'], (peer) => (peer === 'old' ? [PUSH_PROTOCOL_1_0] : [PUSH_PROTOCOL, PUSH_PROTOCOL_1_0]))
  const stats = newSyncStats()
  const pusher = new Pusher(net.p2p, net.store, new OfferLog(30_000), new OpWriter(1 << 20, stats), newSyncActivity(), stats, log)
  const ops = opsFor(3, 'mixed')
  pusher.push(ops.map((op) => ({ hash: hashOf(op), op })), 'local')
  await pusher.stop()
  t.same(net.streams.map((s) => [s.peer, s.protocol]).sort(), [['new', PUSH_PROTOCOL], ['old', PUSH_PROTOCOL_1_0]])
  t.same(net.framesTo('old').map((f) => f.type), [FRAME.ops], 'an opsTo frame would be a violation to a 1.0 node')
  t.same((JSON.parse(net.framesTo('old')[0].payload.toString()) as Op[]).map(hashOf), ops.map(hashOf))
  t.same(net.framesTo('new').map((f) => f.type), [FRAME.opsTo])
  t.same(parseOpsTo(net.framesTo('new')[0].payload), { to: ['old', 'new'], ops: JSON.parse(JSON.stringify(ops)) })
  t.equal(stats.pushedOps, 6)
})

t.test('push: a stream that fails on write is replaced once; a second failure gives up', async (t) => {
  const net = fakePushNet(['A'], ['A'])
  const stats = newSyncStats()
  const pusher = new Pusher(net.p2p, net.store, new OfferLog(30_000), new OpWriter(1 << 20, stats), newSyncActivity(), stats, log)
  net.failOpens(1)
  await pusher.pushTo('A', (s) => asStream(s) && Promise.resolve(void (s as unknown as RecordingStream).send(Buffer.from([9, 0, 0, 0, 0]))))
  t.equal(net.streams.length, 2)
  await sleep(10)
  t.ok(net.streams[0].stream.aborted, 'the failed stream is aborted')
  t.same(net.streams[1].stream.frames.map((f) => f.type), [9], 'sent on the fresh stream')
  net.failOpens(2)
  await pusher.pushTo('B', async (s) => void (s as unknown as RecordingStream).send(Buffer.from([9, 0, 0, 0, 0]))).then(
    () => t.fail('should give up'),
    (error: Error) => t.match(error.message, /stream reset/),
  )
  t.equal(net.streams.length, 4, 'two attempts, no more')
})

t.test('announcements: a member announcing an operation this node lacks is asked for it after the grace; known ones and strangers are not', async (t) => {
  const store = await openStore(t)
  const [have, lacking, offered, fromStranger] = opsFor(4)
  await store.insert([have], 'local')
  const net = fakePushNet(['A', 'stranger'], ['A'])
  const stats = newSyncStats()
  const offers = new OfferLog(30_000)
  offers.stored(hashOf(offered), Date.now())
  const writer = new OpWriter(1 << 20, stats)
  const pusher = new Pusher(net.p2p, net.store, offers, writer, newSyncActivity(), stats, log)
  const announcements = new Announcements({ getOps: (h) => store.getOps(h), memberOfPeer: net.store.memberOfPeer }, offers, pusher, writer, newSyncActivity(), stats, log)
  t.teardown(() => announcements.stop())
  announcements.announced([hashOf(have), hashOf(lacking), hashOf(offered)], 'A')
  announcements.announced([hashOf(fromStranger)], 'stranger')
  t.equal(announcements.size, 2, 'the one already offered here is skipped at once; a stranger is ignored')
  await sleep(ANNOUNCE_GRACE_MS / 2)
  t.same(net.framesTo('A'), [], 'nothing asked during the grace')
  // timers never fire early, but a loaded machine may fire them late: wait for the fetch, then check it exactly
  for (let i = 0; i < 250 && !net.framesTo('A').length; i++) await sleep(20)
  t.same(
    net.framesTo('A').map((f) => [f.type, f.payload.toString('hex')]),
    [[FRAME.fetch, hashOf(lacking)]],
    'only the operation missing from the store is fetched',
  )
  t.same(net.framesTo('stranger'), [])
  t.equal(stats.fetchedOps, 1)
  t.equal(announcements.size, 0)

  await announcements.serveFetch([hashOf(have), hashOf(lacking)], 'A')
  const served = net.framesTo('A').filter((f) => f.type === FRAME.ops)
  t.same(served.flatMap((f) => JSON.parse(f.payload.toString()).map((o: Op) => hashOf(o))), [hashOf(have)], 'what is stored is served')
  await announcements.serveFetch([hashOf(have)], 'stranger')
  t.same(net.framesTo('stranger'), [], 'not to a stranger')
  t.equal(stats.servedOps, 1)
})

t.test('heartbeat validator: fresh heartbeats are passed on, stale ones ignored, invalid ones rejected and counted against the peer', async (t) => {
  const f = fakeBans()
  const stats = newSyncStats()
  const offences = new Offences(f.p2p, { max_invalid_ops: 100, ban_ms: 1000 }, stats, log)
  const verdicts: Record<string, ReturnType<StateStore['heartbeat']>> = { fresh: 'fresh', stale: 'stale', bad: { invalid: 'bad signature' } }
  const validate = heartbeatValidator({ store: { heartbeat: (v) => verdicts[(v as { k: string }).k] }, offences, stats, log })
  const beat = (k: string) => Buffer.from(JSON.stringify({ k }))
  t.equal(await validate(beat('fresh'), 'p'), 'accept')
  t.equal(await validate(beat('stale'), 'p'), 'ignore')
  t.equal(await validate(beat('bad'), 'p'), 'reject')
  t.equal(await validate(Buffer.from('{nope'), 'p'), 'reject')
  t.equal(await validate(Buffer.alloc(2000, 32), 'q'), 'reject', 'oversized, rejected before parsing')
  t.same(offences.byPeer(), { p: 2, q: 1 })
  t.equal(stats.heartbeatsIn, 5)
  t.equal(stats.heartbeatsFresh, 1)
  t.equal(stats.heartbeatBytes, 2000 + beat('fresh').length + beat('stale').length + beat('bad').length + 5)
})

t.test('anti-entropy exchange: two stores exchange exactly what the other lacks, except what was recently offered to the peer', async (t) => {
  const [sa, sb] = [await openStore(t), await openStore(t)]
  const common = opsFor(20, 'c')
  const onlyA = opsFor(5, 'a')
  const onlyB = opsFor(7, 'b')
  await sa.insert([...common, ...onlyA], 'local')
  await sb.insert([...common, ...onlyB], 'local')
  const side = (store: StateStore) => {
    const stats = newSyncStats()
    const f = fakeBans()
    const offences = new Offences(f.p2p, { max_invalid_ops: 10, ban_ms: 1000 }, stats, log)
    const offers = new OfferLog(30_000)
    const intake = new Intake(store, newSyncActivity(), stats, offences, log)
    return { stats, offers, exchange: new AntiEntropyExchange(reader, store, { max_want_ids: 1000 }, offers, offences, intake, new OpWriter(1 << 20, stats), stats) }
  }
  const a = side(sa)
  const b = side(sb)
  // B pushed one of its operations to A moments ago: the round leaves it to push
  b.offers.stored(hashOf(onlyB[0]), Date.now())
  b.offers.offer(hashOf(onlyB[0]), 'A')
  const [ta, tb] = pipe()
  const [ra, rb] = await Promise.all([a.exchange.run(ta, 'B', true), b.exchange.run(tb, 'A', false)])
  t.equal(ra.sent, 5)
  t.equal(rb.sent, 6, 'the operation offered by push is not sent again')
  t.same(Object.fromEntries(a.exchange.sentTo), { B: 5 })
  t.equal(a.stats.receivedOps, 6)
  t.equal(b.stats.receivedOps, 5)
  t.equal(a.stats.syncRounds, 1)
  t.ok(a.stats.syncBytes > 0)
  const present = async (store: StateStore, ops: Op[]) => (await store.getOps(ops.map((o) => hashOf(o)))).filter(Boolean).length
  t.equal(await present(sb, onlyA), 5, 'B has all of A')
  t.equal(await present(sa, onlyB), 6, 'A has all of B but the one left to push')
})

t.test('anti-entropy exchange: the round ends for the sender only once the receiver has stored what it was sent', async (t) => {
  // Ending at fin let the sender start its next round while the receiver was still verifying: that
  // round found the same gap and sent it again (a joining node got its catch-up twice).
  const [sa, sb] = [await openStore(t), await openStore(t)]
  const gap = opsFor(50, 'g')
  await sa.insert(gap, 'local')
  const side = (store: Pick<StateStore, 'idSet' | 'getOps' | 'insert'>) => {
    const stats = newSyncStats()
    const offences = new Offences(fakeBans().p2p, { max_invalid_ops: 10, ban_ms: 1000 }, stats, log)
    const intake = new Intake(store, newSyncActivity(), stats, offences, log)
    return new AntiEntropyExchange(reader, store, { max_want_ids: 1000 }, new OfferLog(30_000), offences, intake, new OpWriter(1 << 20, stats), stats)
  }
  // the receiver's store takes its time, as verification does under load
  const slowB = { idSet: () => sb.idSet(), getOps: (h: string[]) => sb.getOps(h), insert: async (ops: unknown[], source: string) => (await sleep(300), sb.insert(ops, source)) }
  const [ta, tb] = pipe()
  const receiving = side(slowB).run(tb, 'A', false)
  const r = await side(sa).run(ta, 'B', true)
  const present = (await sb.getOps(gap.map(hashOf))).filter(Boolean).length
  t.equal(r.sent, 50)
  t.equal(present, 50, `the receiver had stored the gap when the sender's round ended (${present} of 50)`)
  await receiving
})

t.test('anti-entropy exchange: anything but the stored frame at the end of a round is a protocol violation', async (t) => {
  const [sa, sb] = [await openStore(t), await openStore(t)]
  await sa.insert(opsFor(3, 'e'), 'local')
  const side = (store: StateStore) => {
    const stats = newSyncStats()
    const offences = new Offences(fakeBans().p2p, { max_invalid_ops: 10, ban_ms: 1000 }, stats, log)
    return { offences, exchange: new AntiEntropyExchange(reader, store, { max_want_ids: 1000 }, new OfferLog(30_000), offences, new Intake(store, newSyncActivity(), stats, offences, log), new OpWriter(1 << 20, stats), stats) }
  }
  const a = side(sa)
  const [ta, tb] = pipe()
  // B's side of the stream swaps its closing stored frame for an empty fetch frame
  const evil = Object.assign(Object.create(null), tb, {
    send: (x: Uint8Array) => tb.send(x[0] === FRAME.stored ? Buffer.from([FRAME.fetch, 0, 0, 0, 0]) : x),
    [Symbol.asyncIterator]: (tb as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator],
  }) as Stream
  const [ra] = await Promise.allSettled([a.exchange.run(ta, 'B', true), side(sb).exchange.run(evil, 'A', false)])
  t.match(ra, { status: 'rejected', reason: { code: 'P2P_PROTOCOL', message: /unexpected frame 8 at the end of reconciliation/ } })
  t.same(a.offences.byPeer(), { B: VIOLATION_WEIGHT }, 'it counts against the peer')
})

t.test('anti-entropy exchange: a malformed ranges frame is a protocol violation counted against the peer', async (t) => {
  const store = await openStore(t)
  const f = fakeBans()
  const stats = newSyncStats()
  const offences = new Offences(f.p2p, { max_invalid_ops: 10, ban_ms: 1000 }, stats, log)
  const exchange = new AntiEntropyExchange(reader, store, { max_want_ids: 10 }, new OfferLog(30_000), offences, new Intake(store, newSyncActivity(), stats, offences, log), new OpWriter(1 << 20, stats), stats)
  const [mine, theirs] = pipe()
  theirs.send(Buffer.from([FRAME.ranges, 0, 0, 0, 3, 0xff, 0xff, 0xff]))
  await t.rejects(exchange.run(mine, 'evil', false), { code: 'P2P_PROTOCOL' })
  t.same(offences.byPeer(), { evil: VIOLATION_WEIGHT })
  t.equal(stats.malformedFrames, 1)
})

t.test('scheduler: one round at a time; a peer declined meanwhile is reconciled with afterwards, crossing rounds resolved by peer id', async (t) => {
  const opened: string[] = []
  const aborted: string[] = []
  let release!: () => void
  const rounds: string[] = []
  const round = {
    run: async (_stream: Stream, peer: string, initiator: boolean) => {
      rounds.push(`${initiator ? 'out' : 'in'}:${peer}`)
      if (peer === 'slow') await new Promise<void>((r) => (release = r))
      return { sent: 0, wanted: 0 }
    },
  }
  const p2p = {
    peerId: 'M',
    connectedPeers: () => ['slow', 'X', 'Z'],
    open: async (peer: unknown, protocol: string) => {
      opened.push(`${protocol === SYNC_PROTOCOL ? 'sync' : protocol}:${String(peer)}`)
      return asStream(new RecordingStream())
    },
  }
  const stats = newSyncStats()
  const scheduler = new AntiEntropyScheduler(p2p, round, { anti_entropy_interval_ms: 60_000 }, newSyncActivity(), stats, log)
  t.teardown(() => scheduler.stop())
  const inbound = (peer: string) => {
    const s = { abort: () => void aborted.push(peer) }
    return scheduler.inbound(asStream(s), peer)
  }
  const slow = inbound('slow')
  t.equal(scheduler.reconciling, 'slow')
  await inbound('X')
  t.same(aborted, ['X'], 'declined while another round runs')
  t.equal(stats.syncDeclined, 1)
  t.same(opened, [], 'no round of its own meanwhile')
  release()
  await slow
  for (let i = 0; i < 100 && !opened.length; i++) await sleep(20)
  t.same(opened, ['sync:X'], 'the declined peer is reconciled with once the round is over')
  t.same(rounds, ['in:slow', 'out:X'])
  await sleep(50)
  t.equal(scheduler.reconciling, undefined)

  /** A scheduler of node M in an outbound round with `peer` that lasts until released. */
  const inRoundWith = async (peer: string) => {
    let release!: () => void
    const s = new AntiEntropyScheduler(
      { ...p2p, open: async () => asStream(new RecordingStream()), connectedPeers: () => [peer] },
      { run: async (_s, p, initiator) => (initiator && p === peer ? await new Promise<void>((r) => (release = r)) : undefined, { sent: 0, wanted: 0 }) },
      { anti_entropy_interval_ms: 60_000 },
      newSyncActivity(),
      newSyncStats(),
      log,
    )
    t.teardown(() => s.stop())
    s.enqueue([peer])
    for (let i = 0; i < 100 && s.reconciling !== peer; i++) await sleep(10)
    t.equal(s.reconciling, peer)
    return { scheduler: s, release: () => release() }
  }

  // crossing: this node (M) is in a round with A (A < M) when A's own round arrives: A's goes on
  const withA = await inRoundWith('A')
  const declinedBefore = aborted.length
  await withA.scheduler.inbound(asStream({ abort: () => void aborted.push('A') }), 'A')
  t.equal(aborted.length, declinedBefore, 'the smaller peer id is not declined')
  withA.release()

  // the other side of the rule: in a round with Z (Z > M) when Z's own round arrives, Z's is declined
  const withZ = await inRoundWith('Z')
  await withZ.scheduler.inbound(asStream({ abort: () => void aborted.push('Z') }), 'Z')
  t.equal(aborted.at(-1), 'Z', 'the larger peer id crossing this round is declined')
  withZ.release()
})

t.test('scheduler: rounds queued before push got busy wait for it to go quiet; a new connection is caught up at once', async (t) => {
  const opened: string[] = []
  const p2p = {
    peerId: 'M',
    connectedPeers: () => ['X', 'Y', 'Z'],
    open: async (peer: unknown) => (opened.push(String(peer)), asStream(new RecordingStream())),
  }
  const activity = newSyncActivity()
  const stats = newSyncStats()
  const scheduler = new AntiEntropyScheduler(p2p, { run: async () => ({ sent: 0, wanted: 0 }) }, { anti_entropy_interval_ms: 60_000 }, activity, stats, log)
  t.teardown(() => scheduler.stop())
  const busy = setInterval(() => (activity.lastPush = Date.now()), 100)
  t.teardown(() => clearInterval(busy))
  activity.lastPush = Date.now()
  scheduler.enqueue(['X', 'Y'])
  await sleep(600)
  t.same(opened, [], 'no queued round runs while push carries operations')
  t.ok(stats.syncDeferred > 0, 'the wait is counted')
  scheduler.connected('Z')
  for (let i = 0; i < 100 && !opened.length; i++) await sleep(20)
  t.same(opened, ['Z'], 'a new connection\'s catch-up round runs meanwhile')
  const served: string[] = []
  const declined: string[] = []
  const inbound = (peer: string) => scheduler.inbound(asStream({ abort: () => void declined.push(peer) }), peer).then(() => declined.includes(peer) || served.push(peer))
  await inbound('Y')
  t.same(declined, ['Y'], 'a peer\'s round is declined while push is busy here')
  scheduler.connected('A')
  await inbound('A')
  t.same(declined, ['Y'], 'unless that peer has just connected')
  t.same(served, ['A'])
  clearInterval(busy)
  for (let i = 0; i < 150 && opened.length < 3; i++) await sleep(20)
  t.same(opened, ['Z', 'X', 'Y'], 'the queued rounds run once push is quiet')
})
