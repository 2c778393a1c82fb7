import { Command } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

export class KitShowCommand extends FormCommand {
  static override paths = [['kit', 'show']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Show your wallet address and CLI configuration (never secrets)',
    examples: [
      ['Show it', '$0 kit show'],
      ['As JSON', '$0 kit show --json'],
    ],
  })

  async run() {
    const { loadUserConfig, userConfigPath } = await import('../lib/user-config.js')
    const { checksumAddress } = await import('../lib/wallet.js')
    const config = await loadUserConfig(this.dirs.configDir)
    if (!config) throw new FormError('NO_WALLET', `there is no configuration at ${userConfigPath(this.dirs.configDir)}`, { hint: 'run `form kit init`' })
    const address = checksumAddress(config.address)
    const { agentSocket, askAgent } = await import('../lib/agent.js')
    const agent = await askAgent(agentSocket(this.dirs.runtimeDir), { op: 'address' })
    const unlockedUntil = agent?.address?.toLowerCase() === config.address.toLowerCase() && agent.expiresAt ? new Date(agent.expiresAt) : undefined
    this.print({ ...config, address, config: userConfigPath(this.dirs.configDir), unlockedUntil: unlockedUntil?.toISOString() ?? null }, () =>
      [
        `address:  ${address}`,
        `keystore: ${config.keystore}`,
        `hosts:    ${config.hosts.length ? config.hosts.join(', ') : 'the local node'}`,
        `formnet:  ${config.formnet.join ? 'join' : 'do not join'}`,
        `unlocked: ${unlockedUntil ? `until ${unlockedUntil.toLocaleTimeString()} (form kit lock ends it)` : 'no (form kit unlock)'}`,
      ].join('\n'),
    )
  }
}
