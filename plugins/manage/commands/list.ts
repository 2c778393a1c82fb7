import { Command, Option } from 'clipanion'
import { InstanceCommand } from './shared.js'

export class ManageListCommand extends InstanceCommand {
  static override paths = [['manage', 'list']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'List your instances: what you asked for and what their nodes report',
    details: `
      Reads the replicated state through your node: each instance's desired state (yours to change with \`form manage start|stop|delete\`) and the state its hosting node observed (pending, creating, booting, running, stopped, failed, deleted), with its formnet address.

      A failed instance shows its reason from state, and the last lines of its console: those are not in the replicated state (the console can hold secrets), so the command asks the hosting node for them, signed by your wallet, when that node is the one it talks to.

      Deleted instances are left out once their node has reported them deleted (they stay in state as records); \`--all\` shows them too.
    `,
    examples: [
      ['Your instances', '$0 manage list'],
      ['Deleted ones too', '$0 manage list --all'],
      ['As JSON, for scripts', '$0 manage list --json'],
    ],
  })

  all = Option.Boolean('--all,-a', false, { description: 'Show deleted instances too' })

  async run() {
    return (await import('./run/list.js')).manageList(this)
  }
}
