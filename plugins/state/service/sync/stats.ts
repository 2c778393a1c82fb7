/** Counters the sync service shows at GET /sync and in `form node status`. */
export const newSyncStats = () => ({ syncDeclined: 0, syncDeferred: 0, pushedOps: 0, announcedOps: 0, fetchedOps: 0, servedOps: 0, deliveredOps: 0, syncDeliveredOps: 0, duplicateOps: 0, receivedOps: 0, syncRounds: 0, syncBytes: 0, bans: 0, malformedFrames: 0, rejectedOps: 0, heartbeatsIn: 0, heartbeatsFresh: 0, heartbeatsOut: 0, heartbeatBytes: 0 })
export type SyncStats = ReturnType<typeof newSyncStats>

/** What operations are moving right now, shared by the units that deliver them and those that wait for quiet. */
export interface SyncActivity {
  /** when operations last arrived from a peer */
  lastDelivery: number
  /** operation batches being inserted from peers right now */
  receiving: number
  /** when push last carried operations into or out of this node */
  lastPush: number
}
export const newSyncActivity = (): SyncActivity => ({ lastDelivery: 0, receiving: 0, lastPush: 0 })
