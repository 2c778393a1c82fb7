import { Command, Option } from 'clipanion'
import { FormCommand } from '../command.js'
import { FormError } from '../errors.js'
import { table } from '../output.js'

async function npm(pluginDir: string, args: string[]): Promise<void> {
  const { mkdir, writeFile, access } = await import('node:fs/promises')
  const { join } = await import('node:path')
  const { execa } = await import('execa')
  await mkdir(pluginDir, { recursive: true })
  const manifest = join(pluginDir, 'package.json')
  try {
    await access(manifest)
  } catch {
    await writeFile(manifest, JSON.stringify({ name: 'form-plugins', private: true, description: 'plugins installed with `form plugin add`', dependencies: {} }, null, 2) + '\n')
  }
  try {
    await execa('npm', [...args, '--prefix', pluginDir, '--no-audit', '--no-fund', '--loglevel=error'], { cwd: pluginDir, all: true })
  } catch (error) {
    const e = error as { all?: string; shortMessage?: string; code?: string }
    if (e.code === 'ENOENT') throw new FormError('PLUGIN_NPM_MISSING', 'npm was not found on PATH', { hint: 'install Node.js with npm; form uses npm to install plugins' })
    const output = (e.all ?? '').split('\n').filter((l) => l.trim() && !l.includes('Unknown user config')).slice(-5).join('\n  ')
    throw new FormError('PLUGIN_NPM', `npm ${args[0]} failed${output ? `:\n  ${output}` : ''}`, { hint: 'check the plugin name, path or tarball, and the npm registry settings' })
  }
}

/** A local path or tarball must be absolute for npm's --prefix; a registry name passes through. */
async function normalizeSpec(spec: string): Promise<string> {
  const { resolve } = await import('node:path')
  const { existsSync } = await import('node:fs')
  return spec.startsWith('.') || spec.startsWith('/') || spec.endsWith('.tgz') || existsSync(spec) ? resolve(spec) : spec
}

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
    const { readFile } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const { installedPluginNames, loadPlugins } = await import('../loader.js')
    const dir = this.dirs.pluginDir
    const before = new Set(await installedPluginNames(dir))
    await npm(dir, ['install', '--save', '--install-links', await normalizeSpec(this.spec)])
    const added = (await installedPluginNames(dir)).filter((n) => !before.has(n))
    const name = added[0] ?? (await readPackageName(this.spec)) ?? this.spec
    // Load exactly as the next run of form will, so every rule of the loader applies here too.
    const builtins = this.context.plugins.filter((p) => p.builtin).map((p) => p.plugin)
    const { plugins, problems } = await loadPlugins(builtins, dir)
    const problem = problems.find((p) => p.name === name)
    const loaded = plugins.find((p) => p.location?.includes(`/node_modules/${name}/`))
    if (problem || !loaded) {
      if (!before.has(name)) await npm(dir, ['uninstall', '--save', name]).catch(() => {})
      throw new FormError('PLUGIN_BROKEN', `plugin "${name}" was not installed: ${problem?.reason ?? 'it did not load'}`, {
        hint: 'fix the plugin (templates/plugin is a working one) and add it again',
      })
    }
    const { plugin } = loaded
    const commands = (plugin.commands ?? []).flatMap((c) => (c.paths ?? []).map((p) => `form ${p.join(' ')}`))
    const pkg = JSON.parse(await readFile(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }
    const version = pkg.version ?? plugin.version
    this.print({ installed: name, plugin: plugin.name, version, commands, services: (plugin.services ?? []).map((s) => s.name) }, () =>
      `installed plugin ${plugin.name} ${version}` + (commands.length ? `\ncommands: ${commands.join(', ')}` : ''),
    )
  }
}

async function readPackageName(spec: string): Promise<string | undefined> {
  try {
    const { readFile } = await import('node:fs/promises')
    const { join, resolve } = await import('node:path')
    return (JSON.parse(await readFile(join(resolve(spec), 'package.json'), 'utf8')) as { name?: string }).name
  } catch {
    return undefined
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
    const rows = [
      ...this.context.plugins.map(({ plugin, builtin, location }) => ({
        name: plugin.name,
        version: plugin.version,
        builtin,
        status: 'loaded',
        location: location ?? null,
        commands: (plugin.commands ?? []).flatMap((c) => (c.paths ?? []).map((p) => p.join(' '))),
        services: (plugin.services ?? []).map((s) => s.name),
      })),
      ...this.context.problems.map((p) => ({ name: p.name, version: null, builtin: false, status: 'error', error: p.reason, location: null, commands: [], services: [] })),
    ]
    this.print({ plugins: rows, pluginDir: this.dirs.pluginDir }, () =>
      table(
        rows.map((r) => [r.name, r.version ?? '-', r.builtin ? 'built-in' : 'installed', r.status === 'loaded' ? 'loaded' : `error: ${(r as { error?: string }).error}`, r.services.join(',') || '-']),
        ['NAME', 'VERSION', 'KIND', 'STATUS', 'SERVICES'],
      ),
    )
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
    const { installedPluginNames } = await import('../loader.js')
    const installed = await installedPluginNames(this.dirs.pluginDir)
    if (!installed.includes(this.name)) {
      throw new FormError('PLUGIN_NOT_INSTALLED', `no installed plugin is named "${this.name}"`, {
        hint: installed.length ? `installed: ${installed.join(', ')}` : 'no third-party plugin is installed',
      })
    }
    await npm(this.dirs.pluginDir, ['uninstall', '--save', this.name])
    this.print({ removed: this.name }, `removed plugin ${this.name}`)
  }
}
