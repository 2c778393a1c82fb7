import { existsSync } from 'node:fs'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { resolve, join } from 'node:path'
import { execa } from 'execa'
import { FormError } from '../../errors.js'
import { installedPluginNames, loadPlugins } from '../../loader.js'
import { table } from '../../output.js'
import type { PluginAddCommand, PluginListCommand, PluginRemoveCommand } from '../plugin.js'

async function npm(pluginDir: string, args: string[]): Promise<void> {
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
  return spec.startsWith('.') || spec.startsWith('/') || spec.endsWith('.tgz') || existsSync(spec) ? resolve(spec) : spec
}

async function readPackageName(spec: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(join(resolve(spec), 'package.json'), 'utf8')) as { name?: string }).name
  } catch {
    return undefined
  }
}

export async function pluginAdd(cmd: PluginAddCommand) {
  const dir = cmd.dirs.pluginDir
  const before = new Set(await installedPluginNames(dir))
  await npm(dir, ['install', '--save', '--install-links', await normalizeSpec(cmd.spec)])
  const added = (await installedPluginNames(dir)).filter((n) => !before.has(n))
  const name = added[0] ?? (await readPackageName(cmd.spec)) ?? cmd.spec
  // Load exactly as the next run of form will, so every rule of the loader applies here too.
  const builtins = cmd.context.plugins.filter((p) => p.builtin).map((p) => p.plugin)
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
  cmd.print({ installed: name, plugin: plugin.name, version, commands, services: (plugin.services ?? []).map((s) => s.name) }, () =>
    `installed plugin ${plugin.name} ${version}` + (commands.length ? `\ncommands: ${commands.join(', ')}` : ''),
  )
}

export async function pluginList(cmd: PluginListCommand) {
  const rows = [
    ...cmd.context.plugins.map(({ plugin, builtin, location }) => ({
      name: plugin.name,
      version: plugin.version,
      builtin,
      status: 'loaded',
      location: location ?? null,
      commands: (plugin.commands ?? []).flatMap((c) => (c.paths ?? []).map((p) => p.join(' '))),
      services: (plugin.services ?? []).map((s) => s.name),
    })),
    ...cmd.context.problems.map((p) => ({ name: p.name, version: null, builtin: false, status: 'error', error: p.reason, location: null, commands: [], services: [] })),
  ]
  cmd.print({ plugins: rows, pluginDir: cmd.dirs.pluginDir }, () =>
    table(
      rows.map((r) => [r.name, r.version ?? '-', r.builtin ? 'built-in' : 'installed', r.status === 'loaded' ? 'loaded' : `error: ${(r as { error?: string }).error}`, r.services.join(',') || '-']),
      ['NAME', 'VERSION', 'KIND', 'STATUS', 'SERVICES'],
    ),
  )
}

export async function pluginRemove(cmd: PluginRemoveCommand) {
  const installed = await installedPluginNames(cmd.dirs.pluginDir)
  if (!installed.includes(cmd.name)) {
    throw new FormError('PLUGIN_NOT_INSTALLED', `no installed plugin is named "${cmd.name}"`, {
      hint: installed.length ? `installed: ${installed.join(', ')}` : 'no third-party plugin is installed',
    })
  }
  await npm(cmd.dirs.pluginDir, ['uninstall', '--save', cmd.name])
  cmd.print({ removed: cmd.name }, `removed plugin ${cmd.name}`)
}
