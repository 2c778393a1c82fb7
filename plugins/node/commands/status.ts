import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class NodeStatusCommand extends FormCommand {
  static override paths = [['node', 'status']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Show whether the node runs, its services and their state',
    details:
      'A service is `running`, `degraded` while a part of it (a watch, a background loop) does not work, `failed` when a third-party plugin\'s service could not start and the node runs without it, or `stopped`; the reasons are listed under the table (`reason` in --json). The first line says `degraded` and names them when any service is not running (`health`: ok or degraded, and `notRunning` in --json), for monitoring. Exits 0 when the node runs and 3 when it does not, like `systemctl status`.',
    examples: [
      ['Show the local node', '$0 node status'],
      ['As JSON', '$0 node status --json'],
    ],
  })

  async run() {
    return (await import('./run/status.js')).nodeStatus(this)
  }
}
