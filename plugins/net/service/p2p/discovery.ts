import type { Logger } from '../../../../core/log.js'
import { multiaddr, type FormLibp2p } from '../../lib/p2p/host.js'

/** a walk that finds no new peer doubles the wait for the next, up to this many intervals */
export const MAX_WALK_BACKOFF = 32

type Node = Pick<FormLibp2p, 'peerId' | 'getConnections' | 'dial' | 'peerStore'> & { services: { dht: Pick<FormLibp2p['services']['dht'], 'getClosestPeers'> } }

/**
 * Finding peers. Bootstrap peers are only the first contact; the DHT then finds the rest (see
 * discover()). Peers remembered in the persisted peer store are dialed too, so a restarted node
 * rejoins without them.
 */
export class Discovery {
  private discovering = false
  private timer: NodeJS.Timeout | undefined
  /** intervals between walks, and since the last one */
  private walkEvery = 1
  private sinceWalk = 0
  private peersAtWalk = 0

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

  /**
   * One DHT walk towards this node's own id, dialing every peer met that is not connected (one walk
   * at a time). Resolves to how many new peers it dialed.
   */
  async discover(): Promise<number> {
    const node = this.node
    if (this.discovering || node.getConnections().length === 0) return 0
    this.discovering = true
    let dialed = 0
    try {
      const seen = new Set<string>()
      for await (const event of node.services.dht.getClosestPeers(node.peerId.toMultihash().bytes, { signal: AbortSignal.timeout(15_000) })) {
        const found = event.name === 'FINAL_PEER' ? [event.peer] : event.name === 'PEER_RESPONSE' ? event.closer : []
        for (const p of found) {
          const id = p.id.toString()
          if (seen.has(id) || id === node.peerId.toString() || this.isBanned(id)) continue
          seen.add(id)
          if (!node.getConnections(p.id).length) {
            dialed++
            await this.dialQuietly(p.id, id)
          }
        }
      }
    } catch (error) {
      this.log.debug('discovery round failed', { error: (error as Error).message })
    } finally {
      this.discovering = false
    }
    return dialed
  }

  /**
   * Runs every interval: bootstraps, and walks the DHT when one is due. A walk that finds no new peer
   * doubles the intervals until the next (up to MAX_WALK_BACKOFF): a node connected to all it finds
   * walked every 10 s, about 9 DHT streams and 80 peer-store updates each at 10 nodes, for nothing.
   * A walk that dials someone, or a lost connection, brings the next one back to the next interval.
   */
  async tick(): Promise<void> {
    await this.bootstrap()
    const peers = this.connectedPeers()
    if (peers < this.peersAtWalk) this.walkEvery = 1
    if (++this.sinceWalk < this.walkEvery) return
    this.sinceWalk = 0
    const dialed = await this.discover()
    this.walkEvery = dialed ? 1 : Math.min(2 * this.walkEvery, MAX_WALK_BACKOFF)
    this.peersAtWalk = this.connectedPeers()
  }

  /** Bootstraps and discovers now, then every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    await this.bootstrap()
    void this.discover().then((dialed) => {
      this.walkEvery = dialed ? 1 : 2
      this.peersAtWalk = this.connectedPeers()
    })
    this.timer = setInterval(() => void this.tick(), intervalMs)
    this.timer.unref()
  }

  private connectedPeers(): number {
    return new Set(this.node.getConnections().map((c) => c.remotePeer.toString())).size
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
