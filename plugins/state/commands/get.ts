import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class StateGetCommand extends FormCommand {
  static override paths = [['state', 'get']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'Print one record of the replicated state',
    examples: [
      ['A node record', '$0 state get nodes 0x1234...'],
      ['As JSON, including a deleted record', '$0 state get dns 0xabc.../www --deleted --json'],
    ],
  })
  collection = Option.String({ required: true })
  key = Option.String({ required: true })
  deleted = Option.Boolean('--deleted', false, { description: 'Show the record even when it was deleted' })

  async run() {
    return (await import('./run/get.js')).stateGet(this)
  }
}
