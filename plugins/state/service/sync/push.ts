import type { Stream } from '@libp2p/interface'
import type { Logger } from '../../../../core/log.js'
import type { P2PHandle } from '../../../net/index.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import type { StateStore } from '../../lib/store.js'
import type { OfferLog } from './offers.js'
import { FRAME, fromPeer, MAX_OPS_PER_FRAME, opsToHeader, PUSH_PROTOCOL, PUSH_PROTOCOL_1_0, type OpWriter } from './protocol.js'
import type { SyncActivity, SyncStats } from './stats.js'

/** peers each stored operation is announced to (anti-entropy reaches the rest) */
export const ANNOUNCE_FANOUT = 8

const shuffled = <T>(items: T[]): T[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

interface Queued {
  hash: string
  op: Op
  source?: string
  /** peers the node it came from says it pushed it to as well */
  sentTo?: ReadonlySet<string>
}

/**
 * Push: new operations go to connected member nodes at once over one long-lived stream per peer (a
 * stream per batch made a busy node refuse streams beyond its inbound limit). Operations written here
 * are sent whole, in opsTo frames that name every peer they go to; operations stored from a peer are
 * only announced by hash, to a few peers that were not named.
 */
export class Pusher {
  private queue: Queued[] = []
  private flushing: Promise<void> | undefined
  private readonly streams = new Map<string, Promise<Stream>>()

  constructor(
    private readonly p2p: Pick<P2PHandle, 'open' | 'connectedPeers'>,
    private readonly store: Pick<StateStore, 'memberOfPeer'>,
    private readonly offers: Pick<OfferLog, 'offer'>,
    private readonly writer: OpWriter,
    private readonly activity: SyncActivity,
    private readonly stats: SyncStats,
    private readonly log: Logger,
  ) {}

  /** Queues operations the store took (from `source`, which sent them to `sentTo` too) and starts a flush unless one is running. */
  push(ops: { hash: string; op: Op }[], source: string | undefined, sentTo?: ReadonlySet<string>): void {
    for (const o of ops) this.queue.push({ ...o, source, sentTo })
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined))
  }

  /** Sends on the peer's push stream, opening it when there is none. */
  async pushTo(peer: string, send: (stream: Stream) => Promise<void>): Promise<void> {
    // a stream the peer dropped (it restarted, say) fails on write: one retry on a fresh stream
    for (let attempt = 0; ; attempt++) {
      let stream = this.streams.get(peer)
      if (!stream) {
        stream = this.p2p.open(peer, [PUSH_PROTOCOL, PUSH_PROTOCOL_1_0])
        this.streams.set(peer, stream)
      }
      try {
        await send(await stream)
        return
      } catch (error) {
        this.dropStream(peer, error as Error)
        if (attempt >= 1) throw error
      }
    }
  }

  /** Waits for the flush under way, then closes every push stream. */
  async stop(): Promise<void> {
    await this.flushing
    await Promise.all([...this.streams.values()].map((s) => s.then((x) => x.close(), () => {}).catch(() => {})))
    this.streams.clear()
  }

  private dropStream(peer: string, error?: Error): void {
    const stream = this.streams.get(peer)
    this.streams.delete(peer)
    void stream?.then((s) => s.abort(error ?? new Error('push stream replaced')), () => {})
  }

  private async flush(): Promise<void> {
    const { stats, writer } = this
    while (this.queue.length) {
      const batch = this.queue.splice(0, MAX_OPS_PER_FRAME)
      // Pushed only to member nodes (bound to their peer id by a node record): any libp2p peer may
      // connect, and one that stops answering would stall every push behind it. Others, including
      // a node waiting for admission, catch up by anti-entropy.
      const peers = this.p2p.connectedPeers().filter((peer) => this.store.memberOfPeer(peer) !== undefined)
      for (const peer of this.streams.keys()) if (!peers.includes(peer)) this.dropStream(peer)
      // written here: sent whole to every member, saying to whom (encoded once for every peer)
      const own = batch.filter((o) => !fromPeer(o.source)).map((o) => o.op)
      const header = own.length ? opsToHeader(peers) : undefined
      const ownFramesTo = header ? writer.encodeTo(own, header) : undefined
      // plain frames only for a peer that needs them (push 1.0, or a list too long to carry)
      let plain: Buffer[] | undefined
      const ownFrames = () => (plain ??= writer.encode(own))
      const announce = this.announceTargets(batch.filter((o) => fromPeer(o.source)), peers)
      await Promise.all(
        peers.map(async (peer) => {
          const have = (announce.get(peer) ?? []).map((o) => Buffer.from(o.hash, 'hex'))
          if (!own.length && !have.length) return
          try {
            await this.pushTo(peer, async (stream) => {
              // a node before push 1.1 takes plain ops frames (and would count an opsTo frame against this node)
              if (ownFramesTo && stream.protocol === PUSH_PROTOCOL) await writer.sendFrames(stream, ownFramesTo, FRAME.opsTo)
              else await writer.sendFrames(stream, ownFrames())
              if (have.length) await writeFrame(stream, FRAME.have, Buffer.concat(have))
            })
            stats.pushedOps += own.length
            stats.announcedOps += have.length
            if (own.length) this.activity.lastPush = Date.now()
            for (const o of batch) if (!fromPeer(o.source)) this.offers.offer(o.hash, peer)
            for (const o of announce.get(peer) ?? []) this.offers.offer(o.hash, peer)
          } catch (error) {
            this.log.debug('push failed; anti-entropy will repair it', { peer, error: (error as Error).message })
          }
        }),
      )
    }
  }

  /**
   * Operations stored from a peer, by the peers they are announced to: up to ANNOUNCE_FANOUT peers
   * each, other than the one it came from and those that one said it pushed it to. In a full mesh
   * the author's node names every peer, and nothing is announced: every relay announcing every
   * operation to every peer was a third of the nodes' CPU in a bulk write at 10 nodes.
   */
  private announceTargets(relayed: Queued[], peers: string[]): Map<string, Queued[]> {
    const byPeer = new Map<string, Queued[]>()
    // operations from one frame share their source and sentTo set: targets are drawn once per group
    const groups = new Map<string, Map<ReadonlySet<string> | undefined, Queued[]>>()
    for (const o of relayed) {
      let bySet = groups.get(o.source!)
      if (!bySet) groups.set(o.source!, (bySet = new Map()))
      let ops = bySet.get(o.sentTo)
      if (!ops) bySet.set(o.sentTo, (ops = []))
      ops.push(o)
    }
    for (const [source, bySet] of groups) {
      for (const [sentTo, ops] of bySet) {
        for (const peer of shuffled(peers.filter((p) => p !== source && !sentTo?.has(p))).slice(0, ANNOUNCE_FANOUT)) {
          let list = byPeer.get(peer)
          if (!list) byPeer.set(peer, (list = []))
          for (const o of ops) list.push(o)
        }
      }
    }
    return byPeer
  }
}
