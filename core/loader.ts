import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import * as clipanion from 'clipanion'
import * as typanion from 'typanion'
import { FormCommand } from './command.js'
import { FormError } from './errors.js'
import { API_VERSION, definePlugin, type FormPlugin } from './plugin.js'
import { ApiStream } from './daemon/router.js'

export interface LoadedPlugin {
  plugin: FormPlugin
  builtin: boolean
  /** where a third-party plugin was loaded from */
  location?: string
}

export interface PluginProblem {
  name: string
  reason: string
}

/**
 * What a third-party plugin receives when its default export is a function. Plugins must use the
 * host's clipanion and typanion: options built with another copy of clipanion are not recognized.
 */
export const pluginSdk = { clipanion, typanion, t: typanion, Command: clipanion.Command, Option: clipanion.Option, FormCommand, FormError, ApiStream, definePlugin, API_VERSION }
export type PluginSdk = typeof pluginSdk

/** The names the user installed, from the plugin directory's package.json. */
export async function installedPluginNames(pluginDir: string): Promise<string[]> {
  try {
    const pkg = JSON.parse(await readFile(join(pluginDir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
    return Object.keys(pkg.dependencies ?? {}).sort()
  } catch {
    return []
  }
}

/**
 * Whether `range` (a plugin's apiVersion) admits plugin API `version`; undefined when it is no range.
 * API versions are whole numbers, so a range names whole versions: `1`, `^1`, `~1` and `1.x` all mean 1.
 */
export function apiVersionAccepts(range: unknown, version: number): boolean | undefined {
  if (typeof range === 'number') return Number.isInteger(range) ? range === version : undefined
  if (typeof range !== 'string' || !range.trim()) return undefined
  let valid = true
  const accepts = range.split('||').map((alternative) =>
    alternative.trim().split(/\s+/).every((comparator) => {
      if (comparator === '*' || comparator === 'x') return true
      const m = /^(\^|~|>=|<=|>|<|=)?v?(\d+)(?:\.[x*])?$/.exec(comparator)
      if (!m) return (valid = false)
      const n = Number(m[2])
      return { '>=': version >= n, '<=': version <= n, '>': version > n, '<': version < n }[m[1]] ?? version === n
    }),
  )
  return valid ? accepts.some(Boolean) : undefined
}

function commandKeys(plugin: FormPlugin): string[] {
  return (plugin.commands ?? []).flatMap((c) => (c.paths ?? [[]]).map((p) => p.join(' ')))
}

/** Checks a module's export is a usable plugin; returns the reason when it is not. */
function checkPlugin(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'its default export is not a plugin (use definePlugin from the SDK)'
  const p = value as Partial<FormPlugin>
  if (typeof p.name !== 'string' || !p.name) return 'it has no name'
  const accepts = apiVersionAccepts(p.apiVersion, API_VERSION)
  if (accepts === undefined) return `its apiVersion ${JSON.stringify(p.apiVersion ?? null)} is neither a version nor a range of versions (e.g. ${API_VERSION}, '^${API_VERSION}', '>=${API_VERSION}')`
  if (!accepts) return `it was written for plugin API ${typeof p.apiVersion === 'number' ? `v${p.apiVersion}` : `"${p.apiVersion}"`}, this form provides v${API_VERSION}; upgrade the plugin`
  if (p.commands !== undefined && !Array.isArray(p.commands)) return '`commands` is not an array'
  if (p.services !== undefined && !Array.isArray(p.services)) return '`services` is not an array'
  for (const c of p.commands ?? []) {
    if (typeof c !== 'function' || !(c.prototype instanceof clipanion.Command)) {
      return 'a command does not extend the SDK\'s Command (export a function that receives the SDK and use its Command/FormCommand)'
    }
  }
  for (const s of p.services ?? []) if (typeof s?.name !== 'string' || typeof s.start !== 'function') return 'a service lacks a name or start()'
  return undefined
}

export async function importThirdParty(pluginDir: string, name: string): Promise<{ plugin: FormPlugin; location: string }> {
  const require = createRequire(join(pluginDir, 'package.json'))
  let location: string
  try {
    location = require.resolve(name)
  } catch {
    throw new Error(`it is listed in ${join(pluginDir, 'package.json')} but not installed; run \`form plugin add ${name}\` again`)
  }
  const mod = (await import(pathToFileURL(location).href)) as { default?: unknown }
  let value: unknown = mod.default ?? mod
  if (typeof value === 'function') value = await (value as (sdk: PluginSdk) => unknown)(pluginSdk)
  const reason = checkPlugin(value)
  if (reason) throw new Error(reason)
  return { plugin: value as FormPlugin, location }
}

/**
 * Built-in plugins first, then the user's. A third-party plugin that fails to import, targets
 * another API version, reuses a plugin name or claims a command path that exists is skipped whole
 * and reported; the CLI keeps working.
 */
export async function loadPlugins(builtins: FormPlugin[], pluginDir: string): Promise<{ plugins: LoadedPlugin[]; problems: PluginProblem[] }> {
  const plugins: LoadedPlugin[] = builtins.map((plugin) => ({ plugin, builtin: true }))
  const problems: PluginProblem[] = []
  const names = new Set(builtins.map((p) => p.name))
  const paths = new Map<string, string>()
  for (const p of builtins) for (const key of commandKeys(p)) paths.set(key, p.name)

  for (const name of await installedPluginNames(pluginDir)) {
    try {
      const { plugin, location } = await importThirdParty(pluginDir, name)
      if (names.has(plugin.name)) throw new Error(`a plugin named "${plugin.name}" is already loaded`)
      for (const key of commandKeys(plugin)) {
        const owner = paths.get(key)
        if (owner !== undefined) throw new Error(`its command "form ${key}" is already provided by plugin "${owner}"`)
      }
      names.add(plugin.name)
      for (const key of commandKeys(plugin)) paths.set(key, plugin.name)
      plugins.push({ plugin, builtin: false, location })
    } catch (error) {
      problems.push({ name, reason: (error as Error).message.split('\n')[0] })
    }
  }
  return { plugins, problems }
}
