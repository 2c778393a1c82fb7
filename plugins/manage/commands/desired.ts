import { Command, Option } from 'clipanion'
import { FormError } from '../../../core/errors.js'
import { loadInstanceViews, type DesiredState, type StopReport } from '../../instances/index.js'
import { InstanceCommand } from './shared.js'

/** start, stop and delete: one signed write of the desired state per instance, optionally waited on. */
abstract class DesiredStateCommand extends InstanceCommand {
  instance = Option.String({ required: false, name: 'instance' })
  buildId = Option.String('--build-id', { description: 'Act on every instance of this build' })
  wait = Option.Boolean('--wait', false, { description: 'Wait until the hosting nodes report the new state (or a failure)' })
  timeout = Option.String('--timeout', '600', { description: 'Seconds --wait waits at most' })

  abstract readonly target: DesiredState

  /** --yes of delete; start and stop change nothing for good, so they do not ask */
  confirmed(): boolean {
    return true
  }

  /** Asks on the terminal whether to delete these instances; true for yes. */
  private async ask(names: string[]): Promise<boolean> {
    const { createInterface } = await import('node:readline/promises')
    const rl = createInterface({ input: this.context.stdin, output: this.context.stderr })
    try {
      const answer = await rl.question(`Delete ${names.join(', ')}? The VM, its disk and its address go; this cannot be undone. [y/N] `)
      return /^y(es)?$/i.test(answer.trim())
    } finally {
      rl.close()
    }
  }

  async run() {
    if ((this.instance === undefined) === (this.buildId === undefined)) {
      throw new FormError('USAGE', 'name one instance, or give --build-id (not both)', { hint: `e.g. \`form manage ${this.target === 'running' ? 'start' : this.target === 'stopped' ? 'stop' : 'delete'} web-1\`` })
    }
    const seconds = Number(this.timeout)
    if (!(seconds > 0)) throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${this.timeout}")`)
    const stdin = this.context.stdin as NodeJS.ReadStream
    if (this.target === 'deleted' && !this.confirmed() && !stdin.isTTY) {
      throw new FormError('CONFIRMATION_REQUIRED', `deleting ${this.instance ?? `every instance of build ${this.buildId}`} cannot be undone, and there is no terminal to ask on`, { hint: 'pass --yes to delete without asking (for scripts)' })
    }
    const config = await this.userConfig()
    const { client, views } = await this.instances(config)
    const { selectInstances, writeDesired, followInstances } = await loadInstanceViews()
    const chosen = selectInstances(views, { instance: this.instance, buildId: this.buildId })
    const deleted = chosen.filter((v) => v.desired!.state === 'deleted')
    if (this.target !== 'deleted' && deleted.length) {
      throw new FormError('INSTANCE_DELETED', `instance ${deleted.map((v) => v.id).join(', ')} was deleted; its disk is gone`, { hint: 'ship the build again for a new instance (`form pack ship`)' })
    }
    const live = chosen.filter((v) => v.desired!.state !== 'deleted')
    if (this.target === 'deleted' && !this.confirmed() && live.length && !(await this.ask(live.map((v) => v.desired!.name && v.desired!.name !== v.id ? `${v.id} (${v.desired!.name})` : v.id)))) {
      this.context.stderr.write('nothing deleted\n')
      return 1
    }
    const signer = await this.signer()
    // a failure counts when it is a new report, not the one from before this write (no clocks compared)
    const before = new Map(chosen.map((v) => [v.id, v.observed?.updatedAt]))
    for (const v of chosen) await writeDesired(client, signer, v, this.target)
    const result: { id: string; name: string; node: string; desired: DesiredState; state: string; shutdown?: StopReport }[] = chosen.map((v) => ({ id: v.id, name: v.desired!.name, node: v.host ?? v.desired!.node, desired: this.target, state: v.observed?.state ?? 'unreported' }))
    if (this.wait) {
      // the node tells of every change to these records as it happens; nothing is re-read on a timer
      const stop = new AbortController()
      const timer = setTimeout(() => stop.abort(), seconds * 1000)
      let reached = false
      try {
        for await (const views of followInstances(client, config.address, stop.signal)) {
          const now = new Map(views.map((v) => [v.id, v]))
          for (const r of result) {
            const o = now.get(r.id)?.observed
            r.state = o?.state ?? r.state
            r.shutdown = this.target === 'stopped' && o?.state === 'stopped' ? o.shutdown : undefined
          }
          const failed = result.filter((r) => {
            const o = now.get(r.id)?.observed
            return o?.state === 'failed' && o.updatedAt !== before.get(r.id)
          })
          if (failed.length) {
            const reasons = failed.map((r) => `${r.id}: ${now.get(r.id)?.observed?.reason ?? 'no reason given'}`).join('; ')
            throw new FormError('INSTANCE_FAILED', `the hosting node could not make it ${this.target}: ${reasons}`, { hint: 'see `form manage list` and `form manage logs <instance>`', details: result })
          }
          if ((reached = result.every((r) => r.state === this.target))) break
        }
      } finally {
        clearTimeout(timer)
      }
      if (!reached) {
        throw new FormError('INSTANCE_WAIT_TIMEOUT', `still waiting after ${seconds} s: ${result.filter((r) => r.state !== this.target).map((r) => `${r.id} is ${r.state}`).join(', ')}`, { hint: 'the node keeps working on it; check with `form manage list`', exitCode: 4 })
      }
    }
    const how = (s?: StopReport) => (!s ? '' : s.how === 'powered-off' ? `, powered off by the guest in ${(s.ms / 1000).toFixed(1)} s` : `, forced after ${(s.ms / 1000).toFixed(1)} s: ${s.reason}`)
    this.print({ instances: result }, result.map((r) => `${r.id}${r.name && r.name !== r.id ? ` (${r.name})` : ''}: ${this.wait ? `${r.state}${how(r.shutdown)}` : `desired ${this.target}`}`).join('\n'))
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
