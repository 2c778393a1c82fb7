import { join } from 'node:path'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, Stream } from '@libp2p/interface'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NetConfig } from '../index.js'
import { BLOB_PROTOCOL, blobCid, BlobStore, fetchFromProviders } from '../lib/p2p/blobs.js'
import { BanList, ipOf } from '../lib/p2p/bans.js'
import { ByteBudget, FrameReader } from '../lib/p2p/framing.js'
import { createHost, multiaddr, type FormLibp2p } from '../lib/p2p/host.js'
import { loadOrCreatePeerKey } from '../lib/p2p/identity.js'

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
  open(peer: PeerId | string, protocol: string): Promise<Stream>
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

export async function startP2P(ctx: ServiceContext<NetConfig, never>): Promise<RunningService<P2PHandle>> {
  const config = ctx.config
  const privateKey = await loadOrCreatePeerKey(join(ctx.paths.dataDir, 'keys', 'p2p.key'))
  const log = ctx.log
  const bans = new BanList()
  const isBanned = (id: string) => bans.isBanned(id)
  /** limits hit, by setting name: what `form node status` shows */
  const hits: Record<string, number> = {}
  const count = (limit: string) => void (hits[limit] = (hits[limit] ?? 0) + 1)
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
  const peerListeners: ((peer: PeerId, event: 'connect' | 'disconnect') => void)[] = []
  node.addEventListener('peer:connect', (e) => {
    const id = e.detail.toString()
    if (isBanned(id)) {
      void node.hangUp(e.detail).catch(() => {})
      return
    }
    log.debug('peer connected', { peer: id })
    for (const l of peerListeners) l(e.detail, 'connect')
  })
  node.addEventListener('peer:disconnect', (e) => {
    for (const l of peerListeners) l(e.detail, 'disconnect')
  })

  /**
   * A protocol stream, given up on after 30 s. The timeout bounds the dial only: a stream keeps the
   * signal it was opened with, and a push stream or an image's disk lasts longer than any fixed time.
   */
  const dialProtocol = (peer: PeerId, protocol: string): Promise<Stream> => {
    const dial = new AbortController()
    const timer = setTimeout(() => dial.abort(new FormError('P2P_DIAL_TIMEOUT', `no ${protocol} stream to ${peer} within 30 s`)), 30_000)
    return node.dialProtocol(peer, protocol, { signal: dial.signal }).finally(() => clearTimeout(timer))
  }

  const dialQuietly = async (target: Parameters<FormLibp2p['dial']>[0], what: string) => {
    try {
      await node.dial(target, { signal: AbortSignal.timeout(10_000) })
    } catch (error) {
      log.debug(`could not dial ${what}`, { error: (error as Error).message })
    }
  }

  // Bootstrap peers are only the first contact; the DHT then finds the rest (see discover()). Peers
  // remembered in the persisted peer store are dialed too, so a restarted node rejoins without them.
  const bootstrap = async () => {
    if (node.getConnections().length === 0) {
      const known = (await node.peerStore.all()).filter((p) => !p.id.equals(node.peerId) && p.addresses.length && !isBanned(p.id.toString()))
      for (const p of known.slice(0, 20)) await dialQuietly(p.id, p.id.toString())
    }
    for (const addr of config.bootstrap) {
      const ma = multiaddr(addr)
      const id = ma.getComponents().find((c) => c.name === 'p2p')?.value
      if (id && (id === node.peerId.toString() || node.getConnections().some((c) => c.remotePeer.toString() === id))) continue
      await dialQuietly(ma, addr)
    }
  }
  let discovering = false
  const discover = async () => {
    if (discovering || node.getConnections().length === 0) return
    discovering = true
    try {
      const seen = new Set<string>()
      for await (const event of node.services.dht.getClosestPeers(node.peerId.toMultihash().bytes, { signal: AbortSignal.timeout(15_000) })) {
        const found = event.name === 'FINAL_PEER' ? [event.peer] : event.name === 'PEER_RESPONSE' ? event.closer : []
        for (const p of found) {
          const id = p.id.toString()
          if (seen.has(id) || id === node.peerId.toString() || isBanned(id)) continue
          seen.add(id)
          if (!node.getConnections(p.id).length) await dialQuietly(p.id, id)
        }
      }
    } catch (error) {
      log.debug('discovery round failed', { error: (error as Error).message })
    } finally {
      discovering = false
    }
  }
  await bootstrap()
  void discover()
  const timer = setInterval(() => void bootstrap().then(discover), config.discovery_interval_ms)
  timer.unref()

  const blobs = new BlobStore(join(ctx.paths.dataDir, 'blobs'))
  let mayFetchBlobs: (peer: string) => boolean = () => false
  const handle: P2PHandle = {
    blobs,
    serveBlobsTo: (allowed) => void (mayFetchBlobs = allowed),
    sign: async (data) => privateKey.sign(data),
    async provide(hash) {
      blobs.path(hash)
      await node.contentRouting.provide(blobCid(hash), { signal: AbortSignal.timeout(30_000) })
    },
    async *findProviders(hash, options = {}) {
      for await (const p of node.contentRouting.findProviders(blobCid(hash), { signal: options.signal ?? AbortSignal.timeout(30_000) })) {
        if (!p.id.equals(node.peerId)) {
          await node.peerStore.merge(p.id, { multiaddrs: p.multiaddrs }).catch(() => {})
          yield p.id.toString()
        }
      }
    },
    async fetch(hash, { maxBytes }) {
      const local = await blobs.size(hash)
      if (local !== undefined) return { path: blobs.path(hash), size: local }
      const { peerIdFromString } = await import('@libp2p/peer-id')
      // each provider is bounded by the read timeout; the search itself may outlast a few stalled ones
      const providers = handle.findProviders(hash, { signal: AbortSignal.timeout(30_000 + 4 * config.stream_read_timeout_ms) })
      const result = await fetchFromProviders(blobs, hash, providers, (provider) => dialProtocol(peerIdFromString(provider), BLOB_PROTOCOL), {
        maxBytes,
        timeoutMs: config.stream_read_timeout_ms,
        onFailure: (provider, error) => {
          if ((error as FormError).code === 'P2P_TIMEOUT') count('stream_read_timeout_ms')
          log.warn('blob fetch from a provider failed', { hash, provider, error: error.message })
        },
      })
      if ('provider' in result) return { path: blobs.path(hash), size: (await blobs.size(hash))!, provider: result.provider }
      const failures = result.failures
      throw new FormError('BLOB_UNAVAILABLE', `no provider delivered blob ${hash}${failures.length ? `: ${failures.join('; ')}` : ' (none found)'}`, { httpStatus: 404 })
    },
    gossip(topic, validate) {
      const pubsub = node.services.pubsub
      const verdicts = { accept: TopicValidatorResult.Accept, ignore: TopicValidatorResult.Ignore, reject: TopicValidatorResult.Reject }
      pubsub.topicValidators.set(topic, async (peer, message) => {
        if (isBanned(peer.toString())) return TopicValidatorResult.Reject
        try {
          return verdicts[await validate(message.data, peer.toString())]
        } catch (error) {
          log.warn('a gossip message could not be judged', { topic, peer: peer.toString(), error: (error as Error).message })
          return TopicValidatorResult.Ignore
        }
      })
      pubsub.subscribe(topic)
      return {
        publish: async (data) => void (await pubsub.publish(topic, data)),
        stop: () => {
          pubsub.unsubscribe(topic)
          pubsub.topicValidators.delete(topic)
        },
      }
    },
    maxFrameBytes: config.max_frame_bytes,
    count,
    reader: (stream, peer, options = {}) =>
      new FrameReader(stream, { maxFrame: config.max_frame_bytes, timeoutMs: config.stream_read_timeout_ms, frameTimeoutMs: config.frame_timeout_ms, idleBetweenFrames: options.idleBetweenFrames, budget, peer: peer.toString() }),
    peerId: node.peerId.toString(),
    multiaddrs: () => node.getMultiaddrs().map((m) => m.toString()),
    connectedPeers: () => [...new Set(node.getConnections().map((c) => c.remotePeer.toString()))],
    async handle(protocol, handler, limits = {}) {
      await node.handle(
        protocol,
        async (stream: Stream, connection: { remotePeer: PeerId }) => {
          if (isBanned(connection.remotePeer.toString())) {
            stream.abort(new Error('banned'))
            return
          }
          try {
            await handler(stream, connection.remotePeer)
            // a finished handler frees its stream, or it keeps counting against maxInboundStreams
            await stream.close().catch(() => {})
          } catch (error) {
            log.warn(`${protocol} from ${connection.remotePeer} failed`, { error: (error as Error).message })
            stream.abort(error as Error)
          }
        },
        { maxInboundStreams: limits.maxInboundStreams ?? 8, maxOutboundStreams: limits.maxOutboundStreams ?? 8 },
      )
      return () => node.unhandle(protocol)
    },
    async open(peer, protocol) {
      const id = typeof peer === 'string' ? node.getConnections().find((c) => c.remotePeer.toString() === peer)?.remotePeer : peer
      if (!id) throw new FormError('P2P_NOT_CONNECTED', `not connected to ${peer}`)
      return dialProtocol(id, protocol)
    },
    onPeer: (l) => {
      peerListeners.push(l)
      return () => {
        const i = peerListeners.indexOf(l)
        if (i >= 0) peerListeners.splice(i, 1)
      }
    },
    async ban(peer, ms, reason) {
      const id = peer.toString()
      const conns = node.getConnections().filter((c) => c.remotePeer.toString() === id)
      const ips = [...new Set(conns.map((c) => ipOf(c.remoteAddr)).filter((ip): ip is string => ip !== undefined))]
      bans.ban(id, ips, ms)
      count('bans')
      log.warn('banning peer', { peer: id, addresses: ips, reason, seconds: Math.round(ms / 1000) })
      // every connection from a banned address goes, whichever key it uses
      for (const c of node.getConnections()) if (c.remotePeer.toString() === id || ips.includes(ipOf(c.remoteAddr) ?? '')) await c.abort(new Error('banned'))
    },
  }

  await handle.handle(
    BLOB_PROTOCOL,
    async (stream, peer) => {
      const allowed = mayFetchBlobs(peer.toString())
      if (!allowed) {
        count('blob_refused')
        log.debug('refused a blob request from a peer that is not a member', { peer: peer.toString() })
      }
      await blobs.serve(stream, allowed)
    },
    { maxInboundStreams: 4 },
  )
  ctx.api.post(
    '/blobs',
    async (req) => {
      const hash = await blobs.put(req.body)
      await handle.provide(hash).catch((error: Error) => log.warn('could not announce a blob', { hash, error: error.message }))
      return { hash, size: req.body.length }
    },
    { auth: 'local', maxBody: 256 * 1024 * 1024 },
  )
  ctx.api.post('/blobs/:hash/fetch', async (req) => handle.fetch(req.params.hash, { maxBytes: Number(req.query.get('max_bytes') ?? 8 * 2 ** 30) }), { auth: 'local' })
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
        limitHits: Object.values(hits).reduce((a, b) => a + b, 0),
        limitsHit: { ...hits },
      }
    },
    stop: async () => {
      clearInterval(timer)
      releaseMemory.stop()
      await node.stop()
      await datastore.close()
    },
  }
}

/**
 * Gives memory back after strangers' half-sent frames are dropped. Their buffers are garbage then,
 * but an idle node allocates too little for V8 to collect its old generation, so the process kept
 * ~190 MiB after ten such connections had closed. When the frame bytes held fall from over 32 MiB
 * to under a quarter of that peak, one full collection runs (at most every 10 s). The collection
 * frees the buffers into glibc's heap, which keeps the pages (RSS stayed 230-370 MiB over its
 * baseline after the 10- and 100-connection attacks), so glibc is then asked to return free pages
 * to the system (`malloc_trim`, through koffi: Node has no binding for it).
 */
async function memoryReleaser(budget: ByteBudget, log: (message: string, level?: 'info' | 'warn') => void): Promise<{ stop(): void }> {
  const { setFlagsFromString } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const trim = await mallocTrim(log)
  let peak = 0
  let trimTimer: NodeJS.Timeout | undefined
  const timer = setInterval(() => {
    // a burst that came and went between two looks counts too (the 100-connection case did, leaving 496 MiB)
    peak = Math.max(peak, budget.takeRecentPeak())
    if (peak > 32 * 2 ** 20 && budget.bytes < peak / 4) {
      peak = budget.bytes
      gc()
      // V8 frees collected buffers' memory on a background thread shortly after the collection
      if (trim)
        trimTimer = setTimeout(() => {
          const before = process.memoryUsage.rss()
          trim()
          log(`dropped frames' memory given back: RSS ${mib(before)} -> ${mib(process.memoryUsage.rss())} MiB`, 'info')
        }, 1000).unref()
    }
  }, 10_000)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      clearTimeout(trimTimer)
    },
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20)

/** glibc's `malloc_trim(0)`, or undefined where the C library has none (musl) or koffi cannot load. */
async function mallocTrim(log: (message: string) => void): Promise<(() => void) | undefined> {
  try {
    const { default: koffi } = await import('koffi')
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number
    return () => void trim(0)
  } catch (error) {
    log(`memory freed after dropped frames stays with the allocator (no glibc malloc_trim: ${(error as Error).message})`)
    return undefined
  }
}
