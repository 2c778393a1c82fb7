import { join } from 'node:path'
import type { PeerId, Stream } from '@libp2p/interface'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NetConfig } from '../index.js'
import { BlobStore } from '../lib/p2p/blobs.js'
import { BanList } from '../lib/p2p/bans.js'
import { ByteBudget, FrameReader } from '../lib/p2p/framing.js'
import { createHost, type FormLibp2p } from '../lib/p2p/host.js'
import { loadOrCreatePeerKey } from '../lib/p2p/identity.js'
import { BlobSharing } from './p2p/blob-sharing.js'
import { Discovery } from './p2p/discovery.js'
import { joinTopic } from './p2p/gossip.js'
import { LimitHits } from './p2p/limits.js'
import { memoryReleaser } from './p2p/memory.js'
import { banPeer, PeerEvents } from './p2p/peers.js'
import { ProtocolStreams } from './p2p/streams.js'

export type GossipVerdict = 'accept' | 'ignore' | 'reject'

export interface ProtocolLimits {
  /** concurrent inbound streams of this protocol per connection */
  maxInboundStreams?: number
  maxOutboundStreams?: number
}

/**
 * What services that depend on `p2p` get from ctx.use('p2p'): protocols, peers, blobs and gossip,
 * with the node's limits and bans applied, not the libp2p node itself.
 */
export interface P2PHandle {
  peerId: string
  multiaddrs(): string[]
  connectedPeers(): string[]
  /** serves a protocol (banned peers are refused, limits applied); the function returned stops serving it */
  handle(protocol: string, handler: (stream: Stream, peer: PeerId) => Promise<void>, limits?: ProtocolLimits): Promise<() => Promise<void>>
  /** opens a stream to a connected (or dialable) peer */
  /** several protocols: the first the peer speaks (the stream's `protocol` says which) */
  open(peer: PeerId | string, protocol: string | string[]): Promise<Stream>
  /** called for every new connection to a peer and every lost one; the function returned unsubscribes */
  onPeer(listener: (peer: PeerId, event: 'connect' | 'disconnect') => void): () => void
  /** disconnects a misbehaving peer and refuses it, and the addresses it came from, for `ms` */
  ban(peer: PeerId | string, ms: number, reason: string): Promise<void>
  /**
   * A frame reader for a protocol stream from `peer`, bounded by [net] max_frame_bytes, the node's
   * buffer budget and stream_read_timeout_ms. `idleBetweenFrames`: a long-lived stream may stay silent.
   */
  reader(stream: Stream, peer: PeerId | string, options?: { idleBetweenFrames?: boolean }): FrameReader
  /** the largest frame a peer accepts ([net] max_frame_bytes) */
  readonly maxFrameBytes: number
  /** counts a limit being hit, for `form node status` */
  count(limit: string): void
  /** a signature by this node's libp2p key (binds its peer id to its address in state) */
  sign(data: Uint8Array): Promise<Uint8Array>
  /** content-addressed artifacts (images) */
  blobs: BlobStore
  /**
   * Who may fetch blobs from this node over /form/blob (images hold password hashes, ENV values and
   * code). Until a service sets it, nobody may: membership lives in state, which sets it.
   */
  serveBlobsTo(allowed: (peer: string) => boolean): void
  /** announces in the DHT that this node holds a blob */
  provide(hash: string): Promise<void>
  findProviders(hash: string, options?: { signal?: AbortSignal }): AsyncIterable<string>
  /**
   * Takes part in a gossip topic (gossipsub; one of GOSSIP_TOPICS). `validate` judges each message
   * before it is passed on: 'accept' delivers and forwards it, 'ignore' drops it, 'reject' drops it
   * as the peer's fault. `publish` sends this node's own messages.
   */
  gossip(topic: string, validate: (data: Uint8Array, peer: string) => GossipVerdict | Promise<GossipVerdict>): { publish(data: Uint8Array): Promise<void>; stop(): void }
  /** gets a blob from a provider found through the DHT, verified against its hash */
  fetch(hash: string, options: { maxBytes: number }): Promise<{ path: string; size: number; provider?: string }>
}

declare module '../../../core/plugin.js' {
  interface ServiceHandles {
    p2p: P2PHandle
  }
}

/** The libp2p host and what other services get of it; each concern is a unit of ./p2p/. */
export async function startP2P(ctx: ServiceContext<NetConfig, never>): Promise<RunningService<P2PHandle>> {
  const config = ctx.config
  const privateKey = await loadOrCreatePeerKey(join(ctx.paths.dataDir, 'keys', 'p2p.key'))
  const log = ctx.log
  const bans = new BanList()
  const isBanned = (id: string) => bans.isBanned(id)
  const hits = new LimitHits()
  const count = hits.count
  const gater = bans.gater(() => count('ban_refused_connections'))
  const limits = {
    max_connections: config.max_connections,
    max_incoming_pending_connections: config.max_incoming_pending_connections,
    inbound_connection_rate: config.inbound_connection_rate,
    max_streams_per_connection: config.max_streams_per_connection,
  }
  const budget = new ByteBudget(config.max_buffered_bytes, config.max_peer_buffered_bytes, ({ peer, limit, bytes }) => {
    count(limit)
    log.warn('a peer hit a buffer limit', { peer, limit, bytes, max: limit === 'max_buffered_bytes' ? config.max_buffered_bytes : config.max_peer_buffered_bytes })
  })
  const releaseMemory = await memoryReleaser(budget, (message, level = 'warn') => log[level](message))
  let node: FormLibp2p
  let datastore: { close(): Promise<void> }
  try {
    ;({ node, datastore } = await createHost({ privateKey, listen: config.listen, announce: config.announce, datastorePath: join(ctx.paths.dataDir, 'p2p'), limits, gater }))
  } catch (error) {
    const message = (error as Error).message
    throw new FormError('P2P_LISTEN', `libp2p could not listen on ${config.listen.join(', ')}: ${message}`, {
      hint: /EADDRINUSE|in use/i.test(message) ? 'another process uses that port; pick another with --listen /ip4/0.0.0.0/tcp/PORT or [net] listen' : 'check [net] listen in the operator config',
    })
  }
  const peers = new PeerEvents(node, isBanned, log)
  const streams = new ProtocolStreams(node, isBanned, log)
  const discovery = new Discovery(node, config.bootstrap, isBanned, log)
  await discovery.start(config.discovery_interval_ms)
  const sharing = new BlobSharing(node, new BlobStore(join(ctx.paths.dataDir, 'blobs')), streams, config, count, log)

  const handle: P2PHandle = {
    blobs: sharing.blobs,
    serveBlobsTo: (allowed) => sharing.serveTo(allowed),
    sign: async (data) => privateKey.sign(data),
    provide: (hash) => sharing.provide(hash),
    findProviders: (hash, options) => sharing.findProviders(hash, options),
    fetch: (hash, options) => sharing.fetch(hash, options),
    gossip: (topic, validate) => joinTopic(node.services.pubsub, isBanned, log, topic, validate),
    maxFrameBytes: config.max_frame_bytes,
    count,
    reader: (stream, peer, options = {}) =>
      new FrameReader(stream, { maxFrame: config.max_frame_bytes, timeoutMs: config.stream_read_timeout_ms, frameTimeoutMs: config.frame_timeout_ms, idleBetweenFrames: options.idleBetweenFrames, budget, peer: peer.toString() }),
    peerId: node.peerId.toString(),
    multiaddrs: () => node.getMultiaddrs().map((m) => m.toString()),
    connectedPeers: () => [...new Set(node.getConnections().map((c) => c.remotePeer.toString()))],
    handle: (protocol, handler, limits) => streams.handle(protocol, handler, limits),
    open: (peer, protocol) => streams.open(peer, protocol),
    onPeer: (l) => peers.on(l),
    ban: (peer, ms, reason) => banPeer(node, bans, count, log, peer, ms, reason),
  }

  await sharing.serve(ctx.api)
  ctx.api.get('/p2p', () => ({
    peerId: handle.peerId,
    multiaddrs: handle.multiaddrs(),
    peers: handle.connectedPeers().map((id) => ({ peerId: id, addrs: node.getConnections().filter((c) => c.remotePeer.toString() === id).map((c) => c.remoteAddr.toString()) })),
  }))
  log.info('libp2p listening', { peerId: handle.peerId, addrs: handle.multiaddrs() })

  return {
    handle,
    audience: handle.peerId,
    info: () => {
      return {
        peerId: handle.peerId,
        peers: handle.connectedPeers().length,
        multiaddrs: handle.multiaddrs(),
        connected: handle.connectedPeers(),
        connections: node.getConnections().length,
        bufferedBytes: budget.bytes,
        // what the process holds, for telling frames held from memory the allocator keeps after them
        memory: (({ rss, heapTotal, heapUsed, external, arrayBuffers }) => ({ rss, heapTotal, heapUsed, external, arrayBuffers }))(process.memoryUsage()),
        bufferedPeakBytes: budget.stats.peakBytes,
        banned: bans.live(),
        // the total shows in `form node status`; which limits, with --json
        limitHits: hits.total(),
        limitsHit: hits.byLimit(),
      }
    },
    stop: async () => {
      discovery.stop()
      releaseMemory.stop()
      await node.stop()
      await datastore.close()
    },
  }
}
