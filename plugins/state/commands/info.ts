import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { formatBytes } from '../../../core/output.js'

interface StateInfo {
  address: string
  ops: number
  storage: { records: number; tombstones: number; ops: number; opBytes: number; tombstonesExpired: number; horizonMs?: number; resync?: { message: string } }
}

export class StateInfoCommand extends FormCommand {
  static override paths = [['state', 'info']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'Show what the local state store holds: live records, tombstones, stored operations and their bytes',
    details:
      'The store keeps only the winning operation of each record, so stored operations equal live records plus tombstones; tombstones are dropped after `[state] tombstone_horizon_ms`. A node stopped for longer than that starts empty and re-syncs from its peers, and this says so.',
    examples: [
      ['Sizes of the local store', '$0 state info'],
      ['As JSON', '$0 state info --json'],
    ],
  })

  async run() {
    const client = await this.client()
    const info = await client.get<StateInfo>('/v1/state/info')
    const s = info.storage
    this.print(info, () =>
      [
        `records:    ${s.records} live, ${s.tombstones} tombstone${s.tombstones === 1 ? '' : 's'}`,
        `operations: ${s.ops} stored, ${formatBytes(s.opBytes)}`,
        `tombstones: ${s.tombstonesExpired} dropped since start${s.horizonMs ? `, after ${Math.round(s.horizonMs / 3_600_000)} h ([state] tombstone_horizon_ms)` : ''}`,
        ...(s.resync ? [s.resync.message] : []),
      ].join('\n'),
    )
  }
}
