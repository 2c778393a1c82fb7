import { runningNodePid, terminate } from '../../../../core/daemon/socket.js'
import type { ManageFormnetDownCommand } from '../formnet-down.js'
import { formnetFiles } from './formnet-files.js'

/** Stops a running formnet-up (it removes its interface on the way out); false when none ran. */
export async function stopFormnetUp(pidFile: string): Promise<boolean> {
  const pid = await runningNodePid(pidFile)
  if (!pid) return false
  await terminate(pid, { timeoutMs: 10_000, kill: true })
  return true
}

export async function manageFormnetDown(cmd: ManageFormnetDownCommand) {
  const config = await cmd.userConfig()
  const stopped = await stopFormnetUp(formnetFiles(cmd, config).pidFile)
  cmd.print({ stopped }, stopped ? 'formnet is down' : 'formnet-up was not running')
}
