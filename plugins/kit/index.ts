import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, type SettingsOf } from '../../core/settings.js'
import { kitSettings } from './lib/settings.js'
import { KitExportCommand } from './commands/export.js'
import { KitInitCommand } from './commands/init.js'
import { KitOperatorCommand } from './commands/operator.js'
import { KitShowCommand } from './commands/show.js'
import { KitAgentCommand, KitLockCommand, KitUnlockCommand } from './commands/unlock.js'

export { kitSettings }
export type KitConfig = SettingsOf<typeof kitSettings>

export default definePlugin({
  name: 'kit',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'wallet, keystore and configuration wizards',
  commands: [KitInitCommand, KitShowCommand, KitExportCommand, KitOperatorCommand, KitUnlockCommand, KitLockCommand, KitAgentCommand],
  configuration: defineSettings(kitSettings),
})

export type { FormnetMembership, UserConfig } from './lib/user-config.js'
export { loadUserConfig, saveUserConfig, userConfigPath } from './lib/user-config.js'

/**
 * The signer for node requests: the agent of `form kit unlock` when it runs for this wallet, else the
 * user's keystore unlocked with the password (loaded lazily: it needs the crypto libraries).
 */
export async function loadSigner(opts: { configDir: string; passwordFile?: string; runtimeDir?: string }) {
  return (await import('./lib/signer.js')).loadSigner(opts)
}
