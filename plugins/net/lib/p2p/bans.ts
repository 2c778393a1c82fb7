import type { ConnectionGater } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** The IP address of a multiaddr (ip4 or ip6), if it has one. */
export function ipOf(ma: Multiaddr | undefined): string | undefined {
  return ma?.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value
}

/**
 * Banned peers of the p2p service. A ban holds the peer id and the addresses it came from, so a new
 * key from the same host is refused too; it lapses by itself after its time.
 */
export class BanList {
  private readonly peers = new Map<string, number>()
  private readonly ips = new Map<string, number>()

  /** `now`: the clock bans are measured by (a test passes its own) */
  constructor(private readonly now: () => number = Date.now) {}

  ban(peer: string, ips: string[], ms: number): void {
    const until = this.now() + ms
    this.peers.set(peer, until)
    for (const ip of ips) this.ips.set(ip, until)
  }

  isBanned(peer: string): boolean {
    return (this.peers.get(peer) ?? 0) > this.now()
  }

  ipBanned(ma: Multiaddr | undefined): boolean {
    const ip = ipOf(ma)
    return ip !== undefined && (this.ips.get(ip) ?? 0) > this.now()
  }

  /** the bans in force, for `form node status` */
  live(): { peers: number; addresses: number } {
    const now = this.now()
    const count = (m: Map<string, number>) => [...m.values()].filter((until) => until > now).length
    return { peers: count(this.peers), addresses: count(this.ips) }
  }

  /** What libp2p asks before it accepts or dials: inbound refusals are counted (`form node status`). */
  gater(countRefusal: () => void): ConnectionGater {
    return {
      denyInboundConnection: (conn) => this.ipBanned(conn.remoteAddr) && (countRefusal(), true),
      denyInboundEncryptedConnection: (peer) => this.isBanned(peer.toString()) && (countRefusal(), true),
      denyOutboundConnection: (peer, conn) => this.isBanned(peer.toString()) || this.ipBanned(conn.remoteAddr),
      denyDialPeer: (peer) => this.isBanned(peer.toString()),
      denyDialMultiaddr: (ma) => this.ipBanned(ma),
    }
  }
}
