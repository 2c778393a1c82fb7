import { Command } from 'clipanion'
import { DeveloperCommand } from './shared.js'

/** Stops a running formnet-up (it removes its interface on the way out); false when none ran. */
export async function stopFormnetUp(pidFile: string): Promise<boolean> {
  const { runningNodePid, terminate } = await import('../../../core/daemon/socket.js')
  const pid = await runningNodePid(pidFile)
  if (!pid) return false
  await terminate(pid, { timeoutMs: 10_000, kill: true })
  return true
}

export class ManageFormnetDownCommand extends DeveloperCommand {
  static override paths = [['manage', 'formnet-down']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Stop a background formnet-up and remove the interface',
    examples: [['Stop it', 'sudo $0 manage formnet-down']],
  })

  async run() {
    const config = await this.userConfig()
    const stopped = await stopFormnetUp(this.formnetFiles(config).pidFile)
    this.print({ stopped }, stopped ? 'formnet is down' : 'formnet-up was not running')
  }
}
