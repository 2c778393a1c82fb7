import type { Logger } from '../../../../core/log.js'
import { multiaddr, type FormLibp2p } from '../../lib/p2p/host.js'

type Node = Pick<FormLibp2p, 'peerId' | 'getConnections' | 'dial' | 'peerStore'> & { services: { dht: Pick<FormLibp2p['services']['dht'], 'getClosestPeers'> } }

/**
 * Finding peers. Bootstrap peers are only the first contact; the DHT then finds the rest (see
 * discover()). Peers remembered in the persisted peer store are dialed too, so a restarted node
 * rejoins without them.
 */
export class Discovery {
  private discovering = false
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly node: Node,
    private readonly bootstrapAddrs: string[],
    private readonly isBanned: (id: string) => boolean,
    private readonly log: Logger,
  ) {}

  /** Dials the peers remembered (when connected to none) and the bootstrap peers not connected yet. */
  async bootstrap(): Promise<void> {
    const node = this.node
    if (node.getConnections().length === 0) {
      const known = (await node.peerStore.all()).filter((p) => !p.id.equals(node.peerId) && p.addresses.length && !this.isBanned(p.id.toString()))
      for (const p of known.slice(0, 20)) await this.dialQuietly(p.id, p.id.toString())
    }
    for (const addr of this.bootstrapAddrs) {
      const ma = multiaddr(addr)
      const id = ma.getComponents().find((c) => c.name === 'p2p')?.value
      if (id && (id === node.peerId.toString() || node.getConnections().some((c) => c.remotePeer.toString() === id))) continue
      await this.dialQuietly(ma, addr)
    }
  }

  /** One DHT walk towards this node's own id, dialing every peer met that is not connected (one walk at a time). */
  async discover(): Promise<void> {
    const node = this.node
    if (this.discovering || node.getConnections().length === 0) return
    this.discovering = true
    try {
      const seen = new Set<string>()
      for await (const event of node.services.dht.getClosestPeers(node.peerId.toMultihash().bytes, { signal: AbortSignal.timeout(15_000) })) {
        const found = event.name === 'FINAL_PEER' ? [event.peer] : event.name === 'PEER_RESPONSE' ? event.closer : []
        for (const p of found) {
          const id = p.id.toString()
          if (seen.has(id) || id === node.peerId.toString() || this.isBanned(id)) continue
          seen.add(id)
          if (!node.getConnections(p.id).length) await this.dialQuietly(p.id, id)
        }
      }
    } catch (error) {
      this.log.debug('discovery round failed', { error: (error as Error).message })
    } finally {
      this.discovering = false
    }
  }

  /** Bootstraps and discovers now, then every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.bootstrap()
    void this.discover()
    this.timer = setInterval(() => void this.bootstrap().then(() => this.discover()), intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  private async dialQuietly(target: Parameters<FormLibp2p['dial']>[0], what: string): Promise<void> {
    try {
      await this.node.dial(target, { signal: AbortSignal.timeout(10_000) })
    } catch (error) {
      this.log.debug(`could not dial ${what}`, { error: (error as Error).message })
    }
  }
}
