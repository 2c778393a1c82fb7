import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class NodeStopCommand extends FormCommand {
  static override paths = [['node', 'stop']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Stop the node running on this runtime directory',
    details: 'Sends SIGTERM and waits until the node has stopped its services and exited. Its VMs get the ACPI power button first and are forced off after `[node] shutdown_timeout_s`; it says which powered off and which were forced, and why (`vms` in `--json`). `--force` sends SIGKILL after the timeout.',
    examples: [
      ['Stop the local node', '$0 node stop'],
      ['Stop, killing it if it does not stop within 10 s', '$0 node stop --timeout 10 --force'],
    ],
  })
  timeout = Option.String('--timeout', '30', { description: 'Seconds to wait for a clean stop' })
  force = Option.Boolean('--force', false, { description: 'SIGKILL the node if it has not stopped by the timeout' })

  async run() {
    return (await import('./run/stop.js')).nodeStop(this)
  }
}
