import { Command } from 'clipanion'
import { rm } from 'node:fs/promises'
import { FormError } from '../../../core/errors.js'
import { stopFormnetUp } from './formnet-down.js'
import { DeveloperCommand } from './shared.js'

export class ManageLeaveCommand extends DeveloperCommand {
  static override paths = [['manage', 'leave']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Leave formnet: the node removes this machine from every node\'s peers',
    details: 'Stops a running `formnet-up`, asks the admitting node to remove your peer record (every node then drops the peer), and forgets the address and the WireGuard key.',
    examples: [['Leave', '$0 manage leave --password-file ~/.form-password']],
  })

  async run() {
    const config = await this.userConfig()
    if (!config.formnet.address) throw new FormError('FORMNET_NOT_JOINED', 'this machine is not a formnet member', { hint: 'nothing to leave; join with `form manage join`' })
    const files = this.formnetFiles(config)
    const stopped = await stopFormnetUp(files.pidFile)
    const client = await this.signedClient(config, this.nodeUrl(config, config.formnet.host))
    const { removed } = await client.post<{ removed: boolean }>('/v1/net/leave', {})
    const { saveUserConfig } = await import('../../kit/index.js')
    const address = config.formnet.address
    config.formnet = { join: config.formnet.join, interface: config.formnet.interface }
    await saveUserConfig(this.dirs.configDir, config)
    await rm(files.keyFile, { force: true })
    this.print({ left: true, address, removed, stoppedInterface: stopped }, `left formnet (${address}${removed ? '' : '; the node had no record of it'})${stopped ? '; the interface is down' : ''}`)
  }
}
