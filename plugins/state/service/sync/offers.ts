/**
 * Anti-entropy leaves to push an operation this node pushed or announced to the peer (or had from
 * it) less than this long ago, at most one interval: during a bulk write, rounds otherwise re-sent
 * what push was still delivering (184,000 extra copies at 8 nodes).
 */
export const PUSH_WINDOW_MS = 30_000

/** hash -> when this node stored it and the peers that have it or were offered it by push (in time order) */
export class OfferLog {
  private readonly offered = new Map<string, { at: number; peers: Set<string>; sentTo?: ReadonlySet<string> }>()
  private readonly windowMs: number

  constructor(antiEntropyIntervalMs: number) {
    this.windowMs = Math.min(PUSH_WINDOW_MS, antiEntropyIntervalMs)
  }

  /**
   * An operation this node stored now, from `peer` when a peer sent it, which said it pushed it to
   * `sentTo` as well (one set shared by the whole frame, so it costs nothing per operation).
   */
  stored(hash: string, at: number, peer?: string, sentTo?: ReadonlySet<string>): void {
    this.offered.set(hash, { at, peers: new Set(peer === undefined ? [] : [peer]), sentTo })
  }

  offer(hash: string, peer: string): void {
    this.offered.get(hash)?.peers.add(peer)
  }

  has(hash: string): boolean {
    return this.offered.has(hash)
  }

  /** Whether `peer` has `hash` or was offered it within the window; entries older than the window are forgotten. */
  offeredRecently(hash: string, peer: string): boolean {
    const cutoff = Date.now() - this.windowMs
    for (const [h, o] of this.offered) {
      if (o.at >= cutoff) break
      this.offered.delete(h)
    }
    const o = this.offered.get(hash)
    return o !== undefined && (o.peers.has(peer) || o.sentTo?.has(peer) === true)
  }
}
