import { FormError } from '../../../../core/errors.js'
import type { ApiRouter } from '../../../../core/daemon/router.js'
import type { Logger } from '../../../../core/log.js'
import { BLOB_PROTOCOL, blobCid, fetchFromProviders, type BlobStore } from '../../lib/p2p/blobs.js'
import type { FormLibp2p } from '../../lib/p2p/host.js'
import type { ProtocolStreams } from './streams.js'

type Node = Pick<FormLibp2p, 'peerId' | 'contentRouting' | 'peerStore'>

/** Content-addressed artifacts (images) between nodes: announced in the DHT, fetched from providers, served to members only. */
export class BlobSharing {
  private mayFetch: (peer: string) => boolean = () => false

  constructor(
    private readonly node: Node,
    readonly blobs: BlobStore,
    private readonly streams: Pick<ProtocolStreams, 'handle' | 'dial'>,
    private readonly config: { stream_read_timeout_ms: number },
    private readonly count: (limit: string) => void,
    private readonly log: Logger,
  ) {}

  /** Who may fetch blobs from this node (images hold password hashes, ENV values and code). */
  serveTo(allowed: (peer: string) => boolean): void {
    this.mayFetch = allowed
  }

  async provide(hash: string): Promise<void> {
    this.blobs.path(hash)
    await this.node.contentRouting.provide(blobCid(hash), { signal: AbortSignal.timeout(30_000) })
  }

  async *findProviders(hash: string, options: { signal?: AbortSignal } = {}): AsyncIterable<string> {
    const node = this.node
    for await (const p of node.contentRouting.findProviders(blobCid(hash), { signal: options.signal ?? AbortSignal.timeout(30_000) })) {
      if (!p.id.equals(node.peerId)) {
        await node.peerStore.merge(p.id, { multiaddrs: p.multiaddrs }).catch(() => {})
        yield p.id.toString()
      }
    }
  }

  async fetch(hash: string, { maxBytes }: { maxBytes: number }): Promise<{ path: string; size: number; provider?: string }> {
    const { blobs, config, log } = this
    const local = await blobs.size(hash)
    if (local !== undefined) return { path: blobs.path(hash), size: local }
    const { peerIdFromString } = await import('@libp2p/peer-id')
    // each provider is bounded by the read timeout; the search itself may outlast a few stalled ones
    const providers = this.findProviders(hash, { signal: AbortSignal.timeout(30_000 + 4 * config.stream_read_timeout_ms) })
    const result = await fetchFromProviders(blobs, hash, providers, (provider) => this.streams.dial(peerIdFromString(provider), BLOB_PROTOCOL), {
      maxBytes,
      timeoutMs: config.stream_read_timeout_ms,
      onFailure: (provider, error) => {
        if ((error as FormError).code === 'P2P_TIMEOUT') this.count('stream_read_timeout_ms')
        log.warn('blob fetch from a provider failed', { hash, provider, error: error.message })
      },
    })
    if ('provider' in result) return { path: blobs.path(hash), size: (await blobs.size(hash))!, provider: result.provider }
    const failures = result.failures
    throw new FormError('BLOB_UNAVAILABLE', `no provider delivered blob ${hash}${failures.length ? `: ${failures.join('; ')}` : ' (none found)'}`, { httpStatus: 404 })
  }

  /** Serves BLOB_PROTOCOL (refusing peers that may not fetch) and the local API's upload and fetch routes. */
  async serve(api: Pick<ApiRouter, 'post'>): Promise<void> {
    const { blobs, log } = this
    await this.streams.handle(
      BLOB_PROTOCOL,
      async (stream, peer) => {
        const allowed = this.mayFetch(peer.toString())
        if (!allowed) {
          this.count('blob_refused')
          log.debug('refused a blob request from a peer that is not a member', { peer: peer.toString() })
        }
        await blobs.serve(stream, allowed)
      },
      { maxInboundStreams: 4 },
    )
    api.post(
      '/blobs',
      async (req) => {
        const hash = await blobs.put(req.body)
        await this.provide(hash).catch((error: Error) => log.warn('could not announce a blob', { hash, error: error.message }))
        return { hash, size: req.body.length }
      },
      { auth: 'local', maxBody: 256 * 1024 * 1024 },
    )
    api.post('/blobs/:hash/fetch', async (req) => this.fetch(req.params.hash, { maxBytes: Number(req.query.get('max_bytes') ?? 8 * 2 ** 30) }), { auth: 'local' })
  }
}
