import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class KitShowCommand extends FormCommand {
  static override paths = [['kit', 'show']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Show your wallet address and CLI configuration (never secrets)',
    examples: [
      ['Show it', '$0 kit show'],
      ['As JSON', '$0 kit show --json'],
    ],
  })

  async run() {
    return (await import('./run/show.js')).kitShow(this)
  }
}
