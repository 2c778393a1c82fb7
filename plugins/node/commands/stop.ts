import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

export class NodeStopCommand extends FormCommand {
  static override paths = [['node', 'stop']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Stop the node running on this runtime directory',
    details: 'Sends SIGTERM and waits until the node has stopped its services and exited. `--force` sends SIGKILL after the timeout.',
    examples: [
      ['Stop the local node', '$0 node stop'],
      ['Stop, killing it if it does not stop within 10 s', '$0 node stop --timeout 10 --force'],
    ],
  })
  timeout = Option.String('--timeout', '30', { description: 'Seconds to wait for a clean stop' })
  force = Option.Boolean('--force', false, { description: 'SIGKILL the node if it has not stopped by the timeout' })

  async run() {
    const { runningNodePid, terminate } = await import('../../../core/daemon/socket.js')
    const seconds = Number(this.timeout)
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${this.timeout}")`)
    }
    const pid = await runningNodePid(this.dirs.pidFile)
    if (pid === undefined) {
      this.print({ stopped: false, running: false }, `no node is running (no live pid in ${this.dirs.pidFile})`)
      return 0
    }
    const ended = await terminate(pid, { timeoutMs: seconds * 1000, kill: this.force })
    if (ended === 'alive') {
      throw new FormError('NODE_STOP_TIMEOUT', `the node (pid ${pid}) is still stopping after ${seconds}s`, {
        hint: 'wait longer with --timeout, look at `form node logs`, or add --force to kill it',
      })
    }
    this.print({ stopped: true, pid, killed: ended === 'killed' || undefined }, `node stopped (pid ${pid})`)
  }
}
