import type { Logger } from '../../../../core/log.js'
import type { StateStore } from '../../lib/store.js'
import { insertGuarded } from '../../lib/sync/guarded-insert.js'
import type { Offences } from './offences.js'
import { MAX_OPS_PER_FRAME, violation } from './protocol.js'
import type { SyncActivity, SyncStats } from './stats.js'

/** Inserts operations from peers (by push or anti-entropy); a peer that keeps sending invalid ones is disconnected. */
export class Intake {
  constructor(
    private readonly store: Pick<StateStore, 'insert'>,
    private readonly activity: SyncActivity,
    private readonly stats: SyncStats,
    private readonly offences: Pick<Offences, 'strike'>,
    private readonly log: Logger,
  ) {}

  /** `sentTo`: the peers a member's node says it pushed these operations to as well (see FRAME.opsTo) */
  async receive(ops: unknown[], peer: string, via: 'push' | 'sync', sentTo?: ReadonlySet<string>): Promise<void> {
    if (ops.length > MAX_OPS_PER_FRAME) throw violation(`${ops.length} operations in one message; the limit is ${MAX_OPS_PER_FRAME}`)
    const { activity, stats } = this
    activity.lastDelivery = Date.now()
    if (via === 'push') activity.lastPush = activity.lastDelivery
    activity.receiving++
    const result = await insertGuarded(this.store, ops, peer, sentTo).finally(() => activity.receiving--)
    stats.deliveredOps += ops.length
    if (via === 'sync') stats.syncDeliveredOps += ops.length
    stats.duplicateOps += result.duplicates
    stats.receivedOps += result.accepted
    if (result.rejected.length) {
      stats.rejectedOps += result.rejected.length
      this.log.warn('peer sent invalid operations', { peer, rejected: result.rejected.length, first: result.rejected[0].message })
      await this.offences.strike(peer, result.rejected.length, `${result.rejected.length} invalid operations (${result.rejected[0].code})`)
    }
  }
}
