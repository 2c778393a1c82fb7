import { Command, Option } from 'clipanion'
import { FormCommand } from '../command.js'

export class PluginAddCommand extends FormCommand {
  static override paths = [['plugin', 'add']]
  static override usage = Command.Usage({
    category: 'Plugins',
    description: 'Install a third-party plugin from npm, a directory or a tarball',
    details: 'The plugin is installed with npm into the plugin directory (`<data-dir>/plugins`, env FORM_PLUGIN_DIR) and loaded once to check that it works; a plugin that fails to load is removed again.',
    examples: [
      ['Install from the npm registry', '$0 plugin add form-plugin-hello'],
      ['Install the template shipped with form', '$0 plugin add ./templates/plugin'],
    ],
  })
  spec = Option.String({ required: true, name: 'name|path|tarball' })

  async run() {
    return (await import('./run/plugin.js')).pluginAdd(this)
  }
}

export class PluginListCommand extends FormCommand {
  static override paths = [['plugin', 'list']]
  static override usage = Command.Usage({
    category: 'Plugins',
    description: 'List built-in and installed plugins, their commands and services',
    examples: [['Show every plugin', '$0 plugin list'], ['As JSON', '$0 plugin list --json']],
  })

  async run() {
    return (await import('./run/plugin.js')).pluginList(this)
  }
}

export class PluginRemoveCommand extends FormCommand {
  static override paths = [['plugin', 'remove']]
  static override usage = Command.Usage({
    category: 'Plugins',
    description: 'Uninstall a third-party plugin',
    examples: [['Remove a plugin', '$0 plugin remove form-plugin-hello']],
  })
  name = Option.String({ required: true })

  async run() {
    return (await import('./run/plugin.js')).pluginRemove(this)
  }
}
