import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, kinds, s, type SettingsOf } from '../../core/settings.js'
import { StateDumpCommand } from './commands/dump.js'
import { StateGetCommand } from './commands/get.js'
import { StateInfoCommand } from './commands/info.js'
import { StateListCommand } from './commands/list.js'
import { StateWatchCommand } from './commands/watch.js'
import { stateCollections } from './lib/collections.js'

export const stateSettings = {
  heartbeat_interval_ms: s.int(10_000, 'how often the node sends its signed heartbeat (never stored; its record changes only with its content)'),
  max_clock_skew_ms: s.int(60_000, "operations further ahead than this are held until due (they never move this node's clock)"),
  max_hold_ms: s.int(15 * 60_000, 'operations further ahead than this are rejected (OP_FUTURE); between the two: held, not misbehaviour'),
  max_held_ops: s.int(10_000, 'held operations at most; more are dropped (anti-entropy brings them again)'),
  admins: s.list(kinds.address[0], kinds.address[1], [], 'genesis admins (operator or node addresses) whose `form node admit` records admit nodes; [] = this node alone (a devnet)'),
  admission_threshold: s.int(1, 'how many admins must admit a node'),
  max_op_bytes: s.int(64 * 1024, 'largest operation accepted'),
  verify_workers: s.custom(t.isOneOf([t.isLiteral('auto'), t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 64))]), 'auto, or an integer 0 to 64', 'auto' as 'auto' | number, 'signature-verification threads for large batches (auto: one per core when there are several)'),
  anti_entropy_interval_ms: s.int(30_000, 'how often to reconcile the full state with each peer'),
  max_invalid_ops: s.int(20, 'invalid operations a peer may send before it is banned', { min: 0 }),
  ban_ms: s.int(10 * 60_000, 'how long a banned peer (its id and its IP address) is refused'),
  quota_ops_per_minute: s.int(2000, 'operations one author may submit a minute', {
    before: 'Per-author quotas on POST /v1/state/ops over TCP (the local socket is not metered): 429 past them.',
  }),
  quota_bytes_per_minute: s.int(32 * 1024 * 1024, 'bytes of operations one author may submit a minute (32 MiB)'),
  max_api_batch_bytes: s.int(16 * 1024 * 1024, 'the largest body POST /v1/state/ops takes (413 past it)'),
  sync_batch_bytes: s.int(1024 * 1024, 'target size of one frame of operations (split by bytes; one op at least)'),
  max_want_ids: s.int(50_000, 'operations one anti-entropy round asks for; the rest come next round'),
  tombstone_horizon_ms: s.int(7 * 86_400_000, 'deletions are forgotten after this (a week); a node stopped for longer starts with empty state and re-syncs it from its peers (it logs why)'),
}

export const stateConfiguration = defineSettings(stateSettings)
export type StateConfig = SettingsOf<typeof stateSettings>

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
  configuration: stateConfiguration,
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
