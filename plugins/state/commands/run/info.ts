import { formatBytes } from '../../../../core/output.js'
import type { StateInfoCommand } from '../info.js'

interface StateInfo {
  address: string
  ops: number
  storage: { records: number; tombstones: number; ops: number; opBytes: number; tombstonesExpired: number; horizonMs?: number; resync?: { message: string } }
}

export async function stateInfo(cmd: StateInfoCommand) {
  const client = await cmd.client()
  const info = await client.get<StateInfo>('/v1/state/info')
  const s = info.storage
  cmd.print(info, () =>
    [
      `records:    ${s.records} live, ${s.tombstones} tombstone${s.tombstones === 1 ? '' : 's'}`,
      `operations: ${s.ops} stored, ${formatBytes(s.opBytes)}`,
      `tombstones: ${s.tombstonesExpired} dropped since start${s.horizonMs ? `, after ${Math.round(s.horizonMs / 3_600_000)} h ([state] tombstone_horizon_ms)` : ''}`,
      ...(s.resync ? [s.resync.message] : []),
    ].join('\n'),
  )
}
