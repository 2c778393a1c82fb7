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
    const client = await this.client()
    for await (const entry of client.stream('/v1/state/dump')) this.context.stdout.write(JSON.stringify(entry) + '\n')
  }
}
