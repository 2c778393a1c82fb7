import type { PeerId, Stream } from '@libp2p/interface'
import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import type { FormLibp2p } from '../../lib/p2p/host.js'
import type { ProtocolLimits } from '../p2p.js'

type Node = Pick<FormLibp2p, 'handle' | 'unhandle' | 'dialProtocol' | 'getConnections'>

/** Protocol streams both ways: served ones refuse banned peers and always end, opened ones give up on a slow dial. */
export class ProtocolStreams {
  constructor(
    private readonly node: Node,
    private readonly isBanned: (id: string) => boolean,
    private readonly log: Logger,
  ) {}

  /** Serves a protocol (banned peers are refused, limits applied); the function returned stops serving it. */
  async handle(protocol: string, handler: (stream: Stream, peer: PeerId) => Promise<void>, limits: ProtocolLimits = {}): Promise<() => Promise<void>> {
    const node = this.node
    await node.handle(
      protocol,
      async (stream: Stream, connection: { remotePeer: PeerId }) => {
        if (this.isBanned(connection.remotePeer.toString())) {
          stream.abort(new Error('banned'))
          return
        }
        try {
          await handler(stream, connection.remotePeer)
          // a finished handler frees its stream, or it keeps counting against maxInboundStreams
          await stream.close().catch(() => {})
        } catch (error) {
          this.log.warn(`${protocol} from ${connection.remotePeer} failed`, { error: (error as Error).message })
          stream.abort(error as Error)
        }
      },
      { maxInboundStreams: limits.maxInboundStreams ?? 8, maxOutboundStreams: limits.maxOutboundStreams ?? 8 },
    )
    return () => node.unhandle(protocol)
  }

  /** Opens a stream to a connected peer (by id string) or to a peer id. */
  async open(peer: PeerId | string, protocol: string | string[]): Promise<Stream> {
    const id = typeof peer === 'string' ? this.node.getConnections().find((c) => c.remotePeer.toString() === peer)?.remotePeer : peer
    if (!id) throw new FormError('P2P_NOT_CONNECTED', `not connected to ${peer}`)
    return this.dial(id, protocol)
  }

  /**
   * A protocol stream, given up on after 30 s. The timeout bounds the dial only: a stream keeps the
   * signal it was opened with, and a push stream or an image's disk lasts longer than any fixed time.
   */
  dial(peer: PeerId, protocol: string | string[]): Promise<Stream> {
    const dial = new AbortController()
    const timer = setTimeout(() => dial.abort(new FormError('P2P_DIAL_TIMEOUT', `no ${[protocol].flat().join(' or ')} stream to ${peer} within 30 s`)), 30_000)
    return this.node.dialProtocol(peer, protocol, { signal: dial.signal }).finally(() => clearTimeout(timer))
  }
}
