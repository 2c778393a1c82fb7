import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class StateWatchCommand extends FormCommand {
  static override paths = [['state', 'watch']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'Print changes to a collection as they happen (Ctrl-C to stop)',
    examples: [
      ['Follow node heartbeats', '$0 state watch nodes'],
      ['As JSON lines', '$0 state watch instances --json'],
    ],
  })
  collection = Option.String({ required: true })
  prefix = Option.String('--prefix', { description: 'Only keys that start with this' })

  async run() {
    return (await import('./run/watch.js')).stateWatch(this)
  }
}
