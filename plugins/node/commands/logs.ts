import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class NodeLogsCommand extends FormCommand {
  static override paths = [['node', 'logs']]
  static override usage = Command.Usage({
    category: 'Node',
    description: "Print the node's log",
    examples: [
      ['The last 50 lines', '$0 node logs'],
      ['Follow new lines as they are written', '$0 node logs -f'],
      ['The last 200 lines', '$0 node logs -n 200'],
    ],
  })
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing lines as they are written' })
  lines = Option.String('--lines,-n', '50', { description: 'How many of the last lines to print first' })

  async run() {
    return (await import('./run/logs.js')).nodeLogs(this)
  }
}
