import t from 'tap'
import type { PeerId, Stream } from '@libp2p/interface'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { ApiHandler, ApiRequest } from '../../core/daemon/router.js'
import type { Logger } from '../../core/log.js'
import { BanList } from '../../plugins/net/lib/p2p/bans.js'
import { BLOB_PROTOCOL, BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { multiaddr } from '../../plugins/net/lib/p2p/host.js'
import { BlobSharing } from '../../plugins/net/service/p2p/blob-sharing.js'
import { Discovery } from '../../plugins/net/service/p2p/discovery.js'
import { joinTopic } from '../../plugins/net/service/p2p/gossip.js'
import { LimitHits } from '../../plugins/net/service/p2p/limits.js'
import { banPeer, PeerEvents } from '../../plugins/net/service/p2p/peers.js'
import { ProtocolStreams } from '../../plugins/net/service/p2p/streams.js'

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
/** A peer id as far as these units look at one. */
const peer = (id: string) => ({ toString: () => id, equals: (o: unknown) => String(o) === id, toMultihash: () => ({ bytes: Buffer.from(id) }) }) as unknown as PeerId
const cast = <T>(x: unknown) => x as T

t.test('limit hits: counted by setting, totalled, and handed out as a copy', async (t) => {
  const hits = new LimitHits()
  const { count } = hits
  count('bans')
  count('bans')
  count('blob_refused')
  t.equal(hits.total(), 3)
  const copy = hits.byLimit()
  t.same(copy, { bans: 2, blob_refused: 1 })
  copy.bans = 99
  t.equal(hits.byLimit().bans, 2, 'a copy: the caller cannot change the counts')
})

t.test('peer events: listeners hear connects and disconnects; a banned peer is hung up on unheard; a removed listener hears nothing', async (t) => {
  const target = new EventTarget()
  const hungUp: string[] = []
  const node = { addEventListener: target.addEventListener.bind(target), hangUp: async (p: PeerId) => void hungUp.push(p.toString()), getConnections: () => [] }
  const events = new PeerEvents(cast(node), (id) => id === 'bad', log)
  const heard: string[] = []
  const off = events.on((p, e) => heard.push(`${e}:${p}`))
  const fire = (type: string, id: string) => target.dispatchEvent(new CustomEvent(type, { detail: peer(id) }))
  fire('peer:connect', 'good')
  fire('peer:connect', 'bad')
  fire('peer:disconnect', 'good')
  await new Promise((r) => setImmediate(r))
  t.same(heard, ['connect:good', 'disconnect:good'])
  t.same(hungUp, ['bad'])
  off()
  fire('peer:connect', 'good')
  t.equal(heard.length, 2)
})

t.test('ban: the peer and every connection from its addresses go, whichever key they use', async (t) => {
  const aborted: string[] = []
  const conn = (id: string, addr: string) => ({ remotePeer: peer(id), remoteAddr: multiaddr(addr), abort: async () => void aborted.push(`${id}@${addr}`) })
  const conns = [conn('evil', '/ip4/203.0.113.5/tcp/4001'), conn('evil2', '/ip4/203.0.113.5/tcp/4002'), conn('honest', '/ip4/198.51.100.7/tcp/4001')]
  const bans = new BanList()
  const counted: string[] = []
  await banPeer(cast({ getConnections: () => conns }), bans, (l) => void counted.push(l), log, 'evil', 60_000, 'spam')
  t.same(aborted, ['evil@/ip4/203.0.113.5/tcp/4001', 'evil2@/ip4/203.0.113.5/tcp/4002'])
  t.ok(bans.isBanned('evil'))
  t.same(counted, ['bans'])
  t.same(bans.live(), { peers: 1, addresses: 1 }, 'the key and the one address it came from')
  t.notOk(bans.isBanned('honest'))
})

t.test('protocol streams: a banned peer is refused, a finished handler closes its stream, a failed one aborts it; open needs a connection', async (t) => {
  let serve!: (stream: Stream, connection: { remotePeer: PeerId }) => Promise<void>
  const registered: unknown[] = []
  const dialed: string[] = []
  const node = {
    handle: async (protocol: string, h: typeof serve, limits: unknown) => {
      serve = h
      registered.push(protocol, limits)
    },
    unhandle: async (protocol: string) => void registered.push(`unhandled ${protocol}`),
    dialProtocol: async (p: PeerId, protocol: string, o: { signal: AbortSignal }) => (dialed.push(`${p}:${protocol}:${o.signal.aborted}`), cast<Stream>({})),
    getConnections: () => [{ remotePeer: peer('connected') }],
  }
  const streams = new ProtocolStreams(cast(node), (id) => id === 'bad', log)
  const handled: string[] = []
  const stop = await streams.handle('/x/1', async (_s, p) => {
    handled.push(p.toString())
    if (p.toString() === 'failing') throw new Error('boom')
  }, { maxInboundStreams: 2 })
  t.same(registered, ['/x/1', { maxInboundStreams: 2, maxOutboundStreams: 8 }])
  const stream = () => {
    const s = { closed: false, aborted: undefined as Error | undefined, close: async () => void (s.closed = true), abort: (e: Error) => void (s.aborted = e) }
    return s
  }
  const [banned, fine, failing] = [stream(), stream(), stream()]
  await serve(cast(banned), { remotePeer: peer('bad') })
  await serve(cast(fine), { remotePeer: peer('good') })
  await serve(cast(failing), { remotePeer: peer('failing') })
  t.same(handled, ['good', 'failing'], 'the banned peer never reaches the handler')
  t.match(banned.aborted, { message: 'banned' })
  t.ok(fine.closed, 'freed when the handler is done')
  t.notOk(fine.aborted)
  t.match(failing.aborted, { message: 'boom' })
  await stop()
  t.equal(registered.at(-1), 'unhandled /x/1')
  await t.rejects(streams.open('stranger', '/x/1'), { code: 'P2P_NOT_CONNECTED' })
  await streams.open('connected', '/x/1')
  t.same(dialed, ['connected:/x/1:false'])
})

t.test('discovery: remembered peers are dialed when connected to none, bootstrap peers when not connected; the DHT walk dials what it finds once', async (t) => {
  const self = peer('self')
  const dialed: string[] = []
  let connected: string[] = []
  let walks = 0
  let release!: () => void
  const found = [peer('a'), peer('banned'), peer('self'), peer('a'), peer('b')]
  const node = {
    peerId: self,
    getConnections: (p?: PeerId) => connected.filter((c) => !p || c === p.toString()).map((c) => ({ remotePeer: peer(c) })),
    dial: async (target: unknown) => void dialed.push(String(target)),
    peerStore: { all: async () => [{ id: peer('known'), addresses: [1] }, { id: peer('noaddr'), addresses: [] }, { id: self, addresses: [1] }, { id: peer('banned'), addresses: [1] }] },
    services: {
      dht: {
        async *getClosestPeers() {
          walks++
          await new Promise<void>((r) => (release = r))
          yield { name: 'PEER_RESPONSE', closer: found.slice(0, 3).map((id) => ({ id })) }
          yield { name: 'FINAL_PEER', peer: { id: found[3] } }
          yield { name: 'FINAL_PEER', peer: { id: found[4] } }
        },
      },
    },
  }
  const boot = '/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo'
  const discovery = new Discovery(cast(node), [boot], (id) => id === 'banned', log)
  await discovery.bootstrap()
  t.same(dialed, ['known', boot], 'known peers with addresses, not itself nor the banned; then the bootstrap peer')
  dialed.length = 0
  connected = ['12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo', 'b']
  await discovery.bootstrap()
  t.same(dialed, [], 'connected: the peer store is left alone, and the bootstrap peer is connected already')

  const walk = discovery.discover()
  await discovery.discover()
  release()
  await walk
  t.equal(walks, 1, 'one walk at a time')
  t.same(dialed, ['a'], 'each peer found once; not itself, a banned or a connected one')
  connected = []
  await discovery.discover()
  t.equal(walks, 1, 'no walk without a connection')
})

t.test('discovery: walks that find no new peer back off (to 32 intervals); a lost connection or a new peer brings them back', async (t) => {
  let connected = ['a', 'b']
  let found = ['a', 'b']
  let walks = 0
  const dialed: string[] = []
  const node = {
    peerId: peer('self'),
    getConnections: (p?: PeerId) => connected.filter((c) => !p || c === p.toString()).map((c) => ({ remotePeer: peer(c) })),
    dial: async (target: unknown) => void dialed.push(String(target)),
    peerStore: { all: async () => [] },
    services: {
      dht: {
        async *getClosestPeers() {
          walks++
          for (const id of found) yield { name: 'FINAL_PEER', peer: { id: peer(id) } }
        },
      },
    },
  }
  const discovery = new Discovery(cast(node), [], () => false, log)
  const ticks = async (n: number) => {
    const before = walks
    for (let i = 0; i < n; i++) await discovery.tick()
    return walks - before
  }
  t.equal(await ticks(15), 4, 'connected to all it finds: walks at ticks 1, 3, 7 and 15')
  t.equal(await ticks(64), 2, 'then every 32 intervals at most')
  t.same(dialed, [], 'nothing to dial')
  connected = ['a']
  t.equal(await ticks(1), 1, 'a lost connection: the next tick walks')
  t.same(dialed, ['b'], 'and dials the lost peer it finds')
  connected = ['a', 'b']
  t.equal(await ticks(1), 1, 'a walk that dialed someone is followed by another at the next tick')
  t.equal(await ticks(1), 0, 'which found nothing new: the wait doubles again')
  found = ['a', 'b', 'c']
  t.equal(await ticks(1), 1)
  t.same(dialed, ['b', 'c'], 'a new peer in the DHT is found by the next due walk')
})

t.test('gossip topic: a banned peer is rejected unjudged, a validator that throws means ignore, stop leaves the topic', async (t) => {
  const validators = new Map<string, (p: PeerId, m: { data: Uint8Array }) => Promise<TopicValidatorResult>>()
  const calls: string[] = []
  const pubsub = {
    topicValidators: validators,
    subscribe: (topic: string) => void calls.push(`sub ${topic}`),
    unsubscribe: (topic: string) => void calls.push(`unsub ${topic}`),
    publish: async (topic: string, data: Uint8Array) => void calls.push(`pub ${topic} ${Buffer.from(data)}`),
  }
  const judged: string[] = []
  const topic = joinTopic(cast(pubsub), (id) => id === 'bad', log, '/t', async (data, p) => {
    judged.push(p)
    const text = Buffer.from(data).toString()
    if (text === 'throw') throw new Error('cannot judge')
    return text as 'accept' | 'ignore' | 'reject'
  })
  const v = validators.get('/t')!
  const msg = (s: string) => ({ data: Buffer.from(s) })
  t.equal(await v(peer('good'), msg('accept')), TopicValidatorResult.Accept)
  t.equal(await v(peer('good'), msg('reject')), TopicValidatorResult.Reject)
  t.equal(await v(peer('good'), msg('ignore')), TopicValidatorResult.Ignore)
  t.equal(await v(peer('good'), msg('throw')), TopicValidatorResult.Ignore)
  t.equal(await v(peer('bad'), msg('accept')), TopicValidatorResult.Reject)
  t.equal(judged.length, 4, 'the banned peer is not judged')
  await topic.publish(Buffer.from('hi'))
  topic.stop()
  t.same(calls, ['sub /t', 'pub /t hi', 'unsub /t'])
  t.notOk(validators.has('/t'))
})

t.test('blob sharing: a local blob needs no network; only peers allowed may fetch; the API stores and announces', async (t) => {
  const blobs = new BlobStore(t.testdir())
  const hash = await blobs.put(Buffer.from('image bytes'))
  const provided: string[] = []
  const node = { peerId: peer('self'), contentRouting: { provide: async (cid: unknown) => void provided.push(String(cid)), findProviders: async function* () {} }, peerStore: {} }
  let serve!: (s: Stream, p: PeerId) => Promise<void>
  const streams = { handle: async (protocol: string, h: typeof serve) => (t.equal(protocol, BLOB_PROTOCOL), (serve = h), async () => {}), dial: async () => t.fail('no dial for a local blob') as never }
  const counted: string[] = []
  const sharing = new BlobSharing(cast(node), blobs, cast(streams), { stream_read_timeout_ms: 1000 }, (l) => void counted.push(l), log)
  t.same(await sharing.fetch(hash, { maxBytes: 100 }), { path: blobs.path(hash), size: 11 })
  await t.rejects(sharing.fetch('0'.repeat(64), { maxBytes: 100 }), { code: 'BLOB_UNAVAILABLE', message: /none found/ })

  const routes = new Map<string, ApiHandler>()
  await sharing.serve(cast({ post: (path: string, h: ApiHandler) => void routes.set(path, h) }))
  const served: boolean[] = []
  blobs.serve = async (_s, allowed = true) => void served.push(allowed)
  sharing.serveTo((p) => p === 'member')
  await serve(cast({}), peer('member'))
  await serve(cast({}), peer('stranger'))
  t.same(served, [true, false])
  t.same(counted, ['blob_refused'])
  const stored = (await routes.get('/blobs')!(cast<ApiRequest>({ body: Buffer.from('more') }))) as { hash: string; size: number }
  t.equal(stored.size, 4)
  t.equal(await blobs.size(stored.hash), 4, 'stored')
  t.equal(provided.length, 1, 'and announced')
})
