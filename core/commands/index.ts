import { API_VERSION, definePlugin } from '../plugin.js'
import { VERSION } from '../version.js'
import { CompletionCommand } from './completion.js'
import { HelpCommand } from './help.js'
import { PluginAddCommand, PluginListCommand, PluginRemoveCommand } from './plugin.js'

/** The core's own commands, registered like any plugin's. */
export default definePlugin({
  name: 'core',
  version: VERSION,
  apiVersion: API_VERSION,
  commands: [HelpCommand, CompletionCommand, PluginAddCommand, PluginListCommand, PluginRemoveCommand],
})
