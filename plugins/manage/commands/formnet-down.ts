import { Command } from 'clipanion'
import { DeveloperCommand } from './shared.js'

export class ManageFormnetDownCommand extends DeveloperCommand {
  static override paths = [['manage', 'formnet-down']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Stop a background formnet-up and remove the interface',
    examples: [['Stop it', 'sudo $0 manage formnet-down']],
  })

  async run() {
    return (await import('./run/formnet-down.js')).manageFormnetDown(this)
  }
}
