import type { PeerId } from '@libp2p/interface'
import type { Logger } from '../../../../core/log.js'
import { ipOf, type BanList } from '../../lib/p2p/bans.js'
import type { FormLibp2p } from '../../lib/p2p/host.js'

type Node = Pick<FormLibp2p, 'addEventListener' | 'hangUp' | 'getConnections'>
export type PeerListener = (peer: PeerId, event: 'connect' | 'disconnect') => void

/** Peers connecting and leaving, told to listeners; a banned peer that connects is hung up on instead. */
export class PeerEvents {
  private readonly listeners: PeerListener[] = []

  constructor(node: Node, isBanned: (id: string) => boolean, log: Logger) {
    node.addEventListener('peer:connect', (e) => {
      const id = e.detail.toString()
      if (isBanned(id)) {
        void node.hangUp(e.detail).catch(() => {})
        return
      }
      log.debug('peer connected', { peer: id })
      for (const l of this.listeners) l(e.detail, 'connect')
    })
    node.addEventListener('peer:disconnect', (e) => {
      for (const l of this.listeners) l(e.detail, 'disconnect')
    })
  }

  /** Adds a listener; the function returned removes it. */
  on(l: PeerListener): () => void {
    this.listeners.push(l)
    return () => {
      const i = this.listeners.indexOf(l)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }
}

/** Bans a peer for `ms`: its key and the addresses it is connected from, whose every connection goes now. */
export async function banPeer(node: Pick<FormLibp2p, 'getConnections'>, bans: Pick<BanList, 'ban'>, count: (limit: string) => void, log: Logger, peer: PeerId | string, ms: number, reason: string): Promise<void> {
  const id = peer.toString()
  const conns = node.getConnections().filter((c) => c.remotePeer.toString() === id)
  const ips = [...new Set(conns.map((c) => ipOf(c.remoteAddr)).filter((ip): ip is string => ip !== undefined))]
  bans.ban(id, ips, ms)
  count('bans')
  log.warn('banning peer', { peer: id, addresses: ips, reason, seconds: Math.round(ms / 1000) })
  // every connection from a banned address goes, whichever key it uses
  for (const c of node.getConnections()) if (c.remotePeer.toString() === id || ips.includes(ipOf(c.remoteAddr) ?? '')) await c.abort(new Error('banned'))
}
