import { FormError } from '../../../../core/errors.js'
import { agentSocket, askAgent } from '../../lib/agent.js'
import { loadUserConfig, userConfigPath } from '../../lib/user-config.js'
import { checksumAddress } from '../../lib/wallet.js'
import type { KitShowCommand } from '../show.js'

export async function kitShow(cmd: KitShowCommand) {
  const config = await loadUserConfig(cmd.dirs.configDir)
  if (!config) throw new FormError('NO_WALLET', `there is no configuration at ${userConfigPath(cmd.dirs.configDir)}`, { hint: 'run `form kit init`' })
  const address = checksumAddress(config.address)
  const agent = await askAgent(agentSocket(cmd.dirs.runtimeDir), { op: 'address' })
  const unlockedUntil = agent?.address?.toLowerCase() === config.address.toLowerCase() && agent.expiresAt ? new Date(agent.expiresAt) : undefined
  cmd.print({ ...config, address, config: userConfigPath(cmd.dirs.configDir), unlockedUntil: unlockedUntil?.toISOString() ?? null }, () =>
    [
      `address:  ${address}`,
      `keystore: ${config.keystore}`,
      `hosts:    ${config.hosts.length ? config.hosts.join(', ') : 'the local node'}`,
      `formnet:  ${config.formnet.join ? 'join' : 'do not join'}`,
      `unlocked: ${unlockedUntil ? `until ${unlockedUntil.toLocaleTimeString()} (form kit lock ends it)` : 'no (form kit unlock)'}`,
    ].join('\n'),
  )
}
