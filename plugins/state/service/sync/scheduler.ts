import type { Stream } from '@libp2p/interface'
import type { Logger } from '../../../../core/log.js'
import type { P2PHandle } from '../../../net/index.js'
import { SYNC_PROTOCOL } from './protocol.js'
import type { SyncActivity, SyncStats } from './stats.js'

/** push counts as busy for this long after it last carried operations (periodic anti-entropy waits meanwhile) */
export const PUSH_QUIET_MS = 1000

/** a peer this long connected is still catching up: its rounds are served even while push is busy */
const CATCH_UP_MS = 10_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref())

/**
 * When anti-entropy rounds run. One reconciliation at a time, in either direction: a node that joins,
 * restarts or resumes after a pause takes the gap from the one peer it reconciles with first, instead
 * of from every peer at once (all of them start a round on connect, or their rounds stalled on it
 * fire together on resume). A request that arrives meanwhile is declined (the stream is closed, which
 * costs the requester a debug line); this node reconciles with that peer itself afterwards, when the
 * gap is closed and the round costs fingerprints only.
 */
export class AntiEntropyScheduler {
  private current: string | undefined
  private active = 0
  private readonly declined = new Set<string>()
  private readonly queued = new Set<string>()
  /** queued rounds that catch up a new connection: they run even while push is busy */
  private readonly catchUp = new Set<string>()
  private draining: Promise<void> | undefined
  private stopped = false
  /** since when rounds have waited for push to go quiet (unset while none wait) */
  private waitingSince: number | undefined
  /** when each peer last connected: its catch-up round is served even while push is busy */
  private readonly connectedAt = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly p2p: Pick<P2PHandle, 'peerId' | 'open' | 'connectedPeers'>,
    private readonly round: { run(stream: Stream, peer: string, initiator: boolean): Promise<{ sent: number; wanted: number }> },
    private readonly config: { anti_entropy_interval_ms: number },
    private readonly activity: Pick<SyncActivity, 'lastPush' | 'receiving'>,
    private readonly stats: Pick<SyncStats, 'syncDeclined' | 'syncDeferred'>,
    private readonly log: Logger,
  ) {}

  /** the peer a round runs with now */
  get reconciling(): string | undefined {
    return this.current
  }

  /**
   * Serves a round a peer started (SYNC_PROTOCOL), or declines it while another runs, or while push
   * is busy here (unless the peer has just connected and is catching up): the peer's own push may
   * be quiet, and this node reconciles with it afterwards, when its own rounds may run.
   */
  async inbound(stream: Stream, id: string): Promise<void> {
    // two nodes that start a round with each other at once: the smaller peer id's round goes on
    const crossing = this.current === id && id < this.p2p.peerId
    const catchingUp = Date.now() - (this.connectedAt.get(id) ?? 0) < CATCH_UP_MS
    if ((this.active > 0 && !crossing) || (!catchingUp && this.deferring())) {
      this.stats.syncDeclined++
      this.declined.add(id)
      stream.abort(new Error(this.active > 0 ? 'busy reconciling with another peer' : 'busy with pushed operations'))
      this.drain()
      return
    }
    this.active++
    this.current = id
    try {
      await this.round.run(stream, id, false)
    } finally {
      if (--this.active === 0) this.current = undefined
      this.drain()
    }
  }

  /** A new connection: one side starts the round (both did, each sending the other the whole gap). */
  connected(peer: string): void {
    const now = Date.now()
    for (const [p, at] of this.connectedAt) if (now - at >= CATCH_UP_MS) this.connectedAt.delete(p)
    this.connectedAt.set(peer, now)
    if (this.p2p.peerId >= peer) return
    setTimeout(() => {
      this.catchUp.add(peer)
      this.enqueue([peer])
    }, 200).unref()
  }

  enqueue(peers: string[]): void {
    for (const peer of peers) this.queued.add(peer)
    this.drain()
  }

  /**
   * Rounds with every connected peer now and every anti_entropy_interval_ms. A periodic round waits
   * while push is carrying operations (it would only compete with them for the CPU and find the same
   * gaps push is closing), for at most two more intervals, so that a lost operation is still
   * repaired under a steady stream of writes.
   */
  start(): void {
    this.enqueue(this.p2p.connectedPeers())
    this.timer = setTimeout(() => this.periodic(), this.config.anti_entropy_interval_ms).unref()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  /**
   * Push is carrying operations (or inserting them: a batch can take longer than PUSH_QUIET_MS to
   * verify on a loaded host), and rounds have waited less than two intervals. Rounds queued before
   * push got busy wait too: a round of all connected peers takes seconds, and the rounds left when a
   * bulk of writes starts otherwise ran through it.
   */
  private deferring(): boolean {
    const now = Date.now()
    if (now - this.activity.lastPush >= PUSH_QUIET_MS && this.activity.receiving === 0) {
      this.waitingSince = undefined
      return false
    }
    this.waitingSince ??= now
    return now - this.waitingSince < 2 * this.config.anti_entropy_interval_ms
  }

  private periodic(): void {
    if (this.deferring()) {
      this.stats.syncDeferred++
      this.timer = setTimeout(() => this.periodic(), PUSH_QUIET_MS).unref()
      return
    }
    this.enqueue(this.p2p.connectedPeers())
    this.timer = setTimeout(() => this.periodic(), this.config.anti_entropy_interval_ms).unref()
  }

  private async syncWith(peer: string): Promise<void> {
    this.active++
    this.current = peer
    try {
      const stream = await this.p2p.open(peer, SYNC_PROTOCOL)
      const r = await this.round.run(stream, peer, true)
      await stream.close()
      if (r.sent || r.wanted) this.log.info('anti-entropy exchanged operations', { peer, sent: r.sent, received: r.wanted })
    } catch (error) {
      this.log.debug('anti-entropy failed', { peer, error: (error as Error).message })
    } finally {
      if (--this.active === 0) this.current = undefined
    }
  }

  /** Rounds this node starts run one after another, and after any round a peer started. */
  private drain(): void {
    this.draining ??= (async () => {
      while (!this.stopped && (this.queued.size || this.declined.size)) {
        // a peer declined here is reconciled with once this round ends, after a random pause, so
        // that nodes that declined each other do not retry in step
        if (!this.queued.size) {
          await sleep(50 + Math.random() * 450)
          for (const peer of this.declined) this.queued.add(peer)
          this.declined.clear()
        }
        while (this.active > 0) await sleep(50)
        const peer = [...this.queued].find((p) => this.catchUp.has(p)) ?? (this.deferring() ? undefined : [...this.queued][0])
        if (peer === undefined) {
          if (this.queued.size) {
            this.stats.syncDeferred++
            await sleep(PUSH_QUIET_MS / 4)
          }
          continue
        }
        this.queued.delete(peer)
        this.catchUp.delete(peer)
        if (this.p2p.connectedPeers().includes(peer)) await this.syncWith(peer)
      }
    })().finally(() => {
      // the rounds that waited have run: the next ones may wait again
      this.waitingSince = undefined
      this.draining = undefined
      if (!this.stopped && (this.queued.size || this.declined.size)) this.drain()
    })
  }
}
