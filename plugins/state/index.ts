import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { StateDumpCommand } from './commands/dump.js'
import { StateGetCommand } from './commands/get.js'
import { StateInfoCommand } from './commands/info.js'
import { StateListCommand } from './commands/list.js'
import { StateWatchCommand } from './commands/watch.js'
import { stateCollections } from './lib/collections.js'

export interface StateConfig {
  heartbeat_interval_ms: number
  max_clock_skew_ms: number
  /** operations ahead of the local clock by more than max_clock_skew_ms but at most this are held until due */
  max_hold_ms: number
  /** how many held operations may wait at once */
  max_held_ops: number
  /** genesis admins: addresses whose `members` records admit nodes; empty: this node alone (a devnet) */
  admins: string[]
  /** admins' admissions a node needs to become a member */
  admission_threshold: number
  max_op_bytes: number
  /** worker threads verifying signatures of large batches; 'auto' uses one per core when there are several */
  verify_workers: 'auto' | number
  /** how often anti-entropy reconciles with each connected peer */
  anti_entropy_interval_ms: number
  /** invalid operations a peer may send before it is disconnected and banned */
  max_invalid_ops: number
  ban_ms: number
  /** operations one author may submit through the node's TCP API a minute (429 past it) */
  quota_ops_per_minute: number
  /** bytes of operations one author may submit through the node's TCP API a minute */
  quota_bytes_per_minute: number
  /** the largest body POST /v1/state/ops takes */
  max_api_batch_bytes: number
  /** target size of one frame of operations on the wire (a batch is split by bytes, never below one operation) */
  sync_batch_bytes: number
  /** operation ids one anti-entropy round asks for; the rest come with the next round */
  max_want_ids: number
  /** tombstones are dropped this long after the deletion; a node stopped for longer re-syncs from scratch */
  tombstone_horizon_ms: number
}

const positiveInt = t.cascade(t.isNumber(), t.isInteger(), t.isPositive())

export default definePlugin({
  name: 'state',
  version: '0.1.0',
  apiVersion: API_VERSION,
  collections: stateCollections,
  description: 'the signed, replicated CRDT store on LevelDB',
  commands: [StateGetCommand, StateListCommand, StateWatchCommand, StateDumpCommand, StateInfoCommand],
  services: [
    { name: 'state', dependsOn: [], start: async (ctx) => (await import('./service/state.js')).startStateService(ctx) },
    { name: 'sync', dependsOn: ['state', 'p2p'], start: async (ctx) => (await import('./service/sync.js')).startSync(ctx, ctx.config) },
  ],
  configuration: {
    schema: t.isObject({
      heartbeat_interval_ms: positiveInt,
      max_clock_skew_ms: positiveInt,
      max_hold_ms: positiveInt,
      max_held_ops: positiveInt,
      admins: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^0x[0-9a-fA-F]{40}$/))),
      admission_threshold: positiveInt,
      max_op_bytes: positiveInt,
      verify_workers: t.isOneOf([t.isLiteral('auto'), t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 64))]),
      anti_entropy_interval_ms: positiveInt,
      max_invalid_ops: t.cascade(t.isNumber(), t.isInteger(), t.isAtLeast(0)),
      ban_ms: positiveInt,
      quota_ops_per_minute: positiveInt,
      quota_bytes_per_minute: positiveInt,
      max_api_batch_bytes: positiveInt,
      sync_batch_bytes: positiveInt,
      max_want_ids: positiveInt,
      tombstone_horizon_ms: positiveInt,
    }) as t.StrictValidator<unknown, StateConfig>,
    defaults: { heartbeat_interval_ms: 10_000, max_clock_skew_ms: 60_000, max_hold_ms: 15 * 60_000, max_held_ops: 10_000, admins: [], admission_threshold: 1, max_op_bytes: 64 * 1024, verify_workers: 'auto', anti_entropy_interval_ms: 30_000, max_invalid_ops: 20, ban_ms: 10 * 60_000, quota_ops_per_minute: 2000, quota_bytes_per_minute: 32 * 1024 * 1024, max_api_batch_bytes: 16 * 1024 * 1024, sync_batch_bytes: 1024 * 1024, max_want_ids: 50_000, tombstone_horizon_ms: 7 * 86_400_000 } satisfies StateConfig,
  },
})

export type { StateHandle } from './service/state.js'
export type { StateRecord } from './lib/store.js'
export type { Author, Delegation } from './lib/identity.js'
export type { Timestamp } from './lib/hlc.js'
export type { MemberInfo } from './lib/membership.js'
export { isTime } from './lib/collections.js'

/** Signing operations as a developer's wallet (loaded on demand: it needs the crypto libraries). */
export const loadOwnerOps = () => import('./lib/owner-ops.js')

/** Following a collection over a node's watch stream, for commands that wait on records (see lib/follow.ts). */
export const loadFollow = () => import('./lib/follow.js')
export type { FollowOptions } from './lib/follow.js'
