import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class StateDumpCommand extends FormCommand {
  static override paths = [['state', 'dump']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'Print every operation of the local store as JSON lines, in arrival order (for debugging)',
    examples: [['Save the operation log', '$0 state dump > ops.jsonl']],
  })

  async run() {
    return (await import('./run/dump.js')).stateDump(this)
  }
}
