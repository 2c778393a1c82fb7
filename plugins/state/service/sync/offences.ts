import type { Logger } from '../../../../core/log.js'
import { isProtocolViolation } from '../../../net/index.js'
import type { P2PHandle } from '../../../net/index.js'
import type { SyncStats } from './stats.js'

/** a malformed frame weighs as much as this many invalid operations towards a ban */
export const VIOLATION_WEIGHT = 5

/** Counts each peer's offences (invalid operations, malformed frames, invalid heartbeats); past max_invalid_ops it is banned. */
export class Offences {
  private readonly invalid = new Map<string, number>()

  constructor(
    private readonly p2p: Pick<P2PHandle, 'ban' | 'count'>,
    private readonly config: { max_invalid_ops: number; ban_ms: number },
    private readonly stats: Pick<SyncStats, 'bans' | 'malformedFrames'>,
    private readonly log: Logger,
  ) {}

  async strike(peer: string, weight: number, reason: string): Promise<void> {
    const count = (this.invalid.get(peer) ?? 0) + weight
    this.invalid.set(peer, count)
    if (count > this.config.max_invalid_ops) {
      this.stats.bans++
      await this.p2p.ban(peer, this.config.ban_ms, `${reason}; ${count} offences, the limit is ${this.config.max_invalid_ops} ([state] max_invalid_ops)`)
    }
  }

  /** Runs a protocol exchange; a malformed frame from the peer counts towards its ban. */
  async guarded<T>(peer: string, exchange: () => Promise<T>): Promise<T> {
    try {
      return await exchange()
    } catch (error) {
      if (isProtocolViolation(error)) {
        this.stats.malformedFrames++
        this.p2p.count('malformed_frames')
        this.log.warn('peer broke the sync protocol', { peer, error: (error as Error).message })
        await this.strike(peer, VIOLATION_WEIGHT, (error as Error).message)
      }
      throw error
    }
  }

  /** offences counted so far, by peer */
  byPeer(): Record<string, number> {
    return Object.fromEntries(this.invalid)
  }
}
