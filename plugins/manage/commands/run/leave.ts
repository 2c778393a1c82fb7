import { rm } from 'node:fs/promises'
import { FormError } from '../../../../core/errors.js'
import { saveUserConfig } from '../../../kit/index.js'
import type { ManageLeaveCommand } from '../leave.js'
import { stopFormnetUp } from './formnet-down.js'
import { formnetFiles } from './formnet-files.js'

export async function manageLeave(cmd: ManageLeaveCommand) {
  const config = await cmd.userConfig()
  if (!config.formnet.address) throw new FormError('FORMNET_NOT_JOINED', 'this machine is not a formnet member', { hint: 'nothing to leave; join with `form manage join`' })
  const files = formnetFiles(cmd, config)
  const stopped = await stopFormnetUp(files.pidFile)
  const client = await cmd.signedClient(config, cmd.nodeUrl(config, config.formnet.host))
  const { removed } = await client.post<{ removed: boolean }>('/v1/net/leave', {})
  const address = config.formnet.address
  config.formnet = { join: config.formnet.join, interface: config.formnet.interface }
  await saveUserConfig(cmd.dirs.configDir, config)
  await rm(files.keyFile, { force: true })
  cmd.print({ left: true, address, removed, stoppedInterface: stopped }, `left formnet (${address}${removed ? '' : '; the node had no record of it'})${stopped ? '; the interface is down' : ''}`)
}
