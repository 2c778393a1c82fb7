import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

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
    return (await import('./run/info.js')).stateInfo(this)
  }
}
