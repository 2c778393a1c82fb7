import { readFile } from 'node:fs/promises'
import type { StrictValidator } from 'typanion'
import { FormError, errnoCode } from './errors.js'
import type { FormPlugin } from './plugin.js'

export interface OperatorConfig {
  /** where it was read from; undefined when running on built-in defaults */
  file?: string
  /** every TOML table, as parsed */
  raw: Record<string, unknown>
  /** each plugin's validated section with defaults applied */
  sections: Record<string, any>
}

/**
 * Reads the operator config (TOML). A missing file is fine unless it was named explicitly: a
 * one-node devnet runs on defaults with no config at all.
 */
export async function loadOperatorConfig(file: string, explicit: boolean): Promise<{ file?: string; raw: Record<string, unknown> }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' && !explicit) return { raw: {} }
    throw new FormError('CONFIG_READ', `cannot read the operator config ${file}: ${(error as Error).message}`, {
      hint: errnoCode(error) === 'ENOENT' ? 'check the path given with --config or FORM_OPERATOR_CONFIG, or create one with `form kit operator`' : undefined,
    })
  }
  const TOML = (await import('@iarna/toml')).default
  try {
    return { file, raw: TOML.parse(text) as Record<string, unknown> }
  } catch (error) {
    const e = error as { line?: number; col?: number; message: string }
    const where = e.line !== undefined ? `:${e.line + 1}:${(e.col ?? 0) + 1}` : ''
    throw new FormError('CONFIG_SYNTAX', `${file}${where}: invalid TOML: ${e.message.split('\n')[0]}`, {
      hint: 'fix the syntax at that position (see https://toml.io)',
    })
  }
}

/** Validates one section against a plugin's typanion schema, after applying defaults. */
export function validateSection<T>(file: string | undefined, section: string, value: unknown, schema: StrictValidator<unknown, T>, defaults: T): T {
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new FormError('CONFIG_INVALID', `${file ?? 'operator config'}: [${section}] must be a table`, { hint: `write it as a [${section}] table` })
  }
  const merged = mergeDefaults(defaults, value ?? {})
  const errors: string[] = []
  if (!schema(merged, { errors })) {
    const lines = errors.map((e) => describeTypanionError(section, e))
    throw new FormError('CONFIG_INVALID', `${file ?? 'operator config'}: ${lines.join('; ')}`, {
      hint: `fix the key${lines.length > 1 ? 's' : ''} in ${file ?? 'the operator config'} (see templates/operator.toml for every key)`,
      details: { file, section, errors: lines },
    })
  }
  return merged as T
}

/** Turns typanion's `.resources.vcpus: Expected a number (got "x")` into `[node] resources.vcpus: expected a number (got "x")`. */
function describeTypanionError(section: string, error: string): string {
  const m = /^\.?([^:]*): (.*)$/.exec(error)
  if (!m) return `[${section}] ${error}`
  const key = m[1].replace(/^\./, '') || '(table)'
  const reason = m[2].charAt(0).toLowerCase() + m[2].slice(1)
  return `[${section}] ${key}: ${reason.replace(/^extraneous property/, 'unknown key')}`
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function mergeDefaults<T>(defaults: T, value: unknown): T {
  if (!isPlainObject(defaults) || !isPlainObject(value)) return (value === undefined ? defaults : value) as T
  const out: Record<string, unknown> = { ...defaults }
  for (const [k, v] of Object.entries(value)) out[k] = k in out ? mergeDefaults(out[k], v) : v
  return out as T
}

/**
 * Validates every plugin's section. An unknown top-level table (a typo, or the table of a plugin
 * since removed) is refused, or, given `warn`, reported there and ignored: a node must not refuse to
 * start because `form plugin remove` left its table behind.
 */
export function resolveSections(file: string | undefined, raw: Record<string, unknown>, plugins: FormPlugin[], warn?: (problem: FormError) => void): Record<string, any> {
  const sections: Record<string, any> = {}
  const known = new Set(plugins.map((p) => p.name))
  for (const table of Object.keys(raw)) {
    if (known.has(table)) continue
    const problem = new FormError('CONFIG_INVALID', `${file ?? 'operator config'}: unknown table [${table}]`, {
      hint: `no loaded plugin is named "${table}"; known tables are ${[...known].map((n) => `[${n}]`).join(', ')}`,
      details: { table },
    })
    if (!warn) throw problem
    warn(problem)
  }
  for (const plugin of plugins) {
    const c = plugin.configuration
    sections[plugin.name] = c ? validateSection(file, plugin.name, raw[plugin.name], c.schema, c.defaults) : raw[plugin.name] ?? {}
  }
  return sections
}
