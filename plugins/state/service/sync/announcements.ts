import type { Logger } from '../../../../core/log.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import type { StateStore } from '../../lib/store.js'
import type { OfferLog } from './offers.js'
import { FRAME, SEND_CHUNK, type OpWriter } from './protocol.js'
import type { Pusher } from './push.js'
import type { SyncActivity, SyncStats } from './stats.js'

/**
 * An operation a node stored from a peer is announced to others by hash, not sent: in a mesh each
 * node has it from its author's node already, and flooding made every node receive each operation
 * once per peer (7 deliveries a node at 8 nodes). A node asks for an announced operation only when it
 * has not arrived from elsewhere this long after the announcement...
 */
export const ANNOUNCE_GRACE_MS = 1500
/** ...and while operations keep arriving (its copy may be queued behind them), up to this long */
export const ANNOUNCE_MAX_WAIT_MS = 30_000
/** announced operations awaiting their grace at once; more are left to anti-entropy */
export const MAX_ANNOUNCED = 100_000
/** an operation asked of one peer is asked of another only after this long */
export const FETCH_TIMEOUT_MS = 10_000

/** Announcements: hash -> who announced it first and when; asked of that peer once the grace is over. */
export class Announcements {
  private readonly pending = new Map<string, { peer: string; at: number }>()
  private readonly fetching = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly store: Pick<StateStore, 'memberOfPeer' | 'getOps'>,
    private readonly offers: Pick<OfferLog, 'has'>,
    private readonly pusher: Pick<Pusher, 'pushTo'>,
    private readonly writer: OpWriter,
    private readonly activity: SyncActivity,
    private readonly stats: SyncStats,
    private readonly log: Logger,
  ) {}

  /** announced operations awaiting their grace */
  get size(): number {
    return this.pending.size
  }

  /** A peer announced it has these operations. */
  announced(hashes: string[], peer: string): void {
    // only members' announcements are followed: a stranger's made-up hashes would only cost fetches
    if (this.store.memberOfPeer(peer) === undefined) return
    const now = Date.now()
    for (const hash of hashes) {
      if (this.pending.size >= MAX_ANNOUNCED) break
      // in a mesh the copy from the author's node is usually stored before a relay's announcement
      // comes: known from memory, it costs no store read when the grace is over
      if (this.offers.has(hash)) continue
      if (!this.pending.has(hash) && (this.fetching.get(hash) ?? 0) < now) this.pending.set(hash, { peer, at: now })
    }
    this.timer ??= setTimeout(() => this.fetchMissing(), ANNOUNCE_GRACE_MS).unref()
  }

  /** A peer asked for these operations (it was announced them): sent to members only. */
  async serveFetch(hashes: string[], peer: string): Promise<void> {
    if (this.store.memberOfPeer(peer) === undefined) return
    for (let i = 0; i < hashes.length; i += SEND_CHUNK) {
      const ops = (await this.store.getOps(hashes.slice(i, i + SEND_CHUNK))).filter((o): o is Op => o !== undefined)
      if (!ops.length) continue
      await this.pusher.pushTo(peer, (stream) => this.writer.sendOps(stream, ops))
      this.stats.servedOps += ops.length
    }
  }

  stop(): void {
    clearTimeout(this.timer)
  }

  private async fetchMissing(): Promise<void> {
    this.timer = undefined
    const { pending, fetching } = this
    const now = Date.now()
    // still receiving: the announced copies may be queued behind what is arriving
    const busy = this.activity.receiving > 0 || now - this.activity.lastDelivery < ANNOUNCE_GRACE_MS / 2
    const due = [...pending].filter(([, a]) => now - a.at >= (busy ? ANNOUNCE_MAX_WAIT_MS : ANNOUNCE_GRACE_MS))
    try {
      for (let i = 0; i < due.length; i += SEND_CHUNK) {
        const chunk = due.slice(i, i + SEND_CHUNK)
        const stored = await this.store.getOps(chunk.map(([hash]) => hash))
        const byPeer = new Map<string, Buffer[]>()
        chunk.forEach(([hash, a], j) => {
          pending.delete(hash)
          if (stored[j] || (fetching.get(hash) ?? 0) > now) return
          fetching.set(hash, now + FETCH_TIMEOUT_MS)
          const wanted = byPeer.get(a.peer) ?? []
          wanted.push(Buffer.from(hash, 'hex'))
          byPeer.set(a.peer, wanted)
        })
        for (const [peer, wanted] of byPeer) {
          await this.pusher.pushTo(peer, (stream) => writeFrame(stream, FRAME.fetch, Buffer.concat(wanted))).catch((error: Error) => this.log.debug('fetch not sent; anti-entropy will repair it', { peer, error: error.message }))
          this.stats.fetchedOps += wanted.length
        }
      }
    } catch (error) {
      this.log.warn('announced operations not fetched; anti-entropy will repair it', { error: (error as Error).message })
    }
    for (const [hash, until] of fetching) if (until <= now) fetching.delete(hash)
    if (pending.size) this.timer ??= setTimeout(() => this.fetchMissing(), ANNOUNCE_GRACE_MS / 2).unref()
  }
}
