import { Command, Option } from 'clipanion'
import { type DesiredState } from '../../instances/index.js'
import { InstanceCommand } from './shared.js'

/** start, stop and delete: one signed write of the desired state per instance, optionally waited on. */
export abstract class DesiredStateCommand extends InstanceCommand {
  instance = Option.String({ required: false, name: 'instance' })
  buildId = Option.String('--build-id', { description: 'Act on every instance of this build' })
  wait = Option.Boolean('--wait', false, { description: 'Wait until the hosting nodes report the new state (or a failure)' })
  timeout = Option.String('--timeout', '600', { description: 'Seconds --wait waits at most' })

  abstract readonly target: DesiredState

  /** --yes of delete; start and stop change nothing for good, so they do not ask */
  confirmed(): boolean {
    return true
  }

  async run() {
    return (await import('./run/desired.js')).desiredState(this)
  }
}

export class ManageStartCommand extends DesiredStateCommand {
  readonly target = 'running' as const
  static override paths = [['manage', 'start']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Start an instance (or every instance of a build): its node boots it',
    details: 'Writes the desired state `running`, signed by your wallet. Starting a failed instance makes its node try again at once.',
    examples: [
      ['Start one instance', '$0 manage start web-1'],
      ['Start every replica of a build and wait until they run', '$0 manage start --build-id 3f9c... --wait'],
    ],
  })
}

export class ManageStopCommand extends DesiredStateCommand {
  readonly target = 'stopped' as const
  static override paths = [['manage', 'stop']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Stop an instance (or every instance of a build); its disk is kept',
    details: 'Writes the desired state `stopped`. The node presses the ACPI power button (images built by `form pack build` power off on it), and stops the VM process outright if the guest has not powered off within its shutdown timeout (`[node] shutdown_timeout_s`). With `--wait` it says how each instance stopped: `powered-off` by the guest, or `forced` and why (`shutdown` in `--json`). `form manage start` boots it again from the same disk.',
    examples: [
      ['Stop one instance', '$0 manage stop web-1'],
      ['Stop one instance, wait, and see whether the guest powered off cleanly', '$0 manage stop web-1 --wait'],
      ['Stop every replica of a build and wait until they are down', '$0 manage stop --build-id 3f9c... --wait'],
    ],
  })
}

export class ManageDeleteCommand extends DesiredStateCommand {
  readonly target = 'deleted' as const
  yes = Option.Boolean('--yes,-y', false, { description: 'Do not ask for a confirmation (needed without a terminal)' })
  override confirmed(): boolean {
    return this.yes
  }
  static override paths = [['manage', 'delete']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Delete an instance (or every instance of a build): VM, disk, address',
    details: 'Writes the desired state `deleted`. The node stops the VM, removes its disk copy, tap and address, and marks its record deleted. This cannot be undone, so on a terminal it asks first; without one it needs `--yes`. `form manage list` leaves deleted instances out (`--all` shows them).',
    examples: [
      ['Delete one instance (asks first)', '$0 manage delete web-1'],
      ['Delete every replica of a build, from a script', '$0 manage delete --build-id 3f9c... --yes --wait'],
    ],
  })
}
