import type { Stream } from '@libp2p/interface'
import type { Logger } from '../../../../core/log.js'
import type { P2PHandle } from '../../../net/index.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import type { StateStore } from '../../lib/store.js'
import type { OfferLog } from './offers.js'
import { FRAME, fromPeer, MAX_OPS_PER_FRAME, PUSH_PROTOCOL, type OpWriter } from './protocol.js'
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

/**
 * Push: new operations go to connected member nodes at once over one long-lived stream per peer (a
 * stream per batch made a busy node refuse streams beyond its inbound limit). Operations written here
 * are sent whole; operations stored from a peer are only announced by hash to a few peers.
 */
export class Pusher {
  private queue: { hash: string; op: Op; source?: string }[] = []
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

  /** Queues operations the store took (from `source`) and starts a flush unless one is running. */
  push(ops: { hash: string; op: Op }[], source: string | undefined): void {
    this.queue.push(...ops.map((o) => ({ ...o, source })))
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined))
  }

  /** Sends on the peer's push stream, opening it when there is none. */
  async pushTo(peer: string, send: (stream: Stream) => Promise<void>): Promise<void> {
    // a stream the peer dropped (it restarted, say) fails on write: one retry on a fresh stream
    for (let attempt = 0; ; attempt++) {
      let stream = this.streams.get(peer)
      if (!stream) {
        stream = this.p2p.open(peer, PUSH_PROTOCOL)
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
      // written here: sent whole to every member; stored from a peer: announced to a few
      const own = batch.filter((o) => !fromPeer(o.source)).map((o) => o.op)
      // encoded once for every peer
      const ownFrames = writer.encode(own)
      const relayed = batch.filter((o) => fromPeer(o.source))
      const announceTo = new Set(shuffled(peers).slice(0, ANNOUNCE_FANOUT))
      await Promise.all(
        peers.map(async (peer) => {
          const have = announceTo.has(peer) ? relayed.filter((o) => o.source !== peer).map((o) => Buffer.from(o.hash, 'hex')) : []
          if (!own.length && !have.length) return
          try {
            await this.pushTo(peer, async (stream) => {
              await writer.sendFrames(stream, ownFrames)
              if (have.length) await writeFrame(stream, FRAME.have, Buffer.concat(have))
            })
            stats.pushedOps += own.length
            stats.announcedOps += have.length
            if (own.length) this.activity.lastPush = Date.now()
            for (const o of batch) if (!fromPeer(o.source) || announceTo.has(peer)) this.offers.offer(o.hash, peer)
          } catch (error) {
            this.log.debug('push failed; anti-entropy will repair it', { peer, error: (error as Error).message })
          }
        }),
      )
    }
  }
}
