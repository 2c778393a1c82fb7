// Settings that describe themselves (as Yarn Berry's SettingsType): each key of the operator config is
// declared once, with its validator, default and description. The plugin's typanion schema, its
// defaults, its TypeScript type (SettingsOf), templates/operator.toml and form-operator(5) are all
// derived from that one declaration, so none of them can say something the others do not.
import * as t from 'typanion'
import { FormError } from './errors.js'
import type { PluginConfiguration } from './plugin.js'
import { isAddress, isCidr, isCidrOrEmpty, isEndpointOrEmpty, isHostPort, isInterfaceName, isIpv4MaybePort, isIpv4Port, isLowerAddress, isTcpMultiaddr } from './validators.js'

export interface Setting<T> {
  kind: 'setting'
  validator: t.StrictValidator<unknown, T>
  /** undefined: the key has no fixed default (the node works one out, e.g. from the host) */
  default: T
  /** what the operator reads: in the template (wrapped there) and in form-operator(5) */
  description: string
  /** what the man page calls its type, e.g. "integer, 1 to 65535" or "auto | on | off" */
  type: string
  /**
   * written commented out in the template with this value: for keys whose value the node works out
   * when they are left out (the default then is only the fallback)
   */
  example?: T
  /** the values an enumerated setting takes (for a wizard's choices) */
  choices?: readonly string[]
  /** comment lines the template puts before the key, introducing a group of keys */
  before?: string
}

export interface SettingsTable {
  kind: 'table'
  /** the template's comment beside the table's header */
  description: string
  settings: SettingsDeclaration
}

export type SettingsDeclaration = { [key: string]: Setting<any> | SettingsTable }

/** The type of a validated section: derived from the declaration, never written a second time. */
export type SettingsOf<D extends SettingsDeclaration> = {
  [K in keyof D]: D[K] extends { kind: 'table'; settings: infer S extends SettingsDeclaration } ? SettingsOf<S> : D[K] extends Setting<infer T> ? T : never
}

type Extra<T> = Partial<Pick<Setting<T>, 'example' | 'before'>>

function setting<T>(validator: t.StrictValidator<unknown, T>, type: string, def: T, description: string, extra: Extra<T> = {}): Setting<T> {
  return { kind: 'setting', validator, type, default: def, description, ...extra }
}

function range(min: number, max?: number): string {
  if (max !== undefined) return `${min} to ${max}`
  return min === 0 ? '0 or more' : `${min} or more`
}

/** The builders a plugin declares its settings with. */
export const s = {
  /** a whole number at least `min` (1 unless said) and at most `max` */
  int(def: number, description: string, opts: { min?: number; max?: number } & Extra<number> = {}): Setting<number> {
    const { min = 1, max, ...extra } = opts
    const bound = max === undefined ? t.isAtLeast(min) : t.isInInclusiveRange(min, max)
    return setting(t.cascade(t.isNumber(), t.isInteger(), bound), `integer, ${range(min, max)}`, def, description, extra)
  },
  /** a number above zero, fractions allowed */
  positive(def: number, description: string, extra: Extra<number> = {}): Setting<number> {
    return setting(t.cascade(t.isNumber(), t.isPositive()), 'number above 0', def, description, extra)
  },
  bool(def: boolean, description: string, extra: Extra<boolean> = {}): Setting<boolean> {
    return setting(t.isBoolean(), 'boolean', def, description, extra)
  },
  /** a string, checked by `check` when given (one of the shared validators, or a pattern) */
  string(def: string, description: string, opts: { check?: t.StrictValidator<unknown, string>; type?: string } & Extra<string> = {}): Setting<string> {
    const { check, type = 'string', ...extra } = opts
    return setting(check ?? t.isString(), type, def, description, extra)
  },
  /** a string that is not there unless the operator writes it (its default is worked out at run time) */
  optionalString(description: string, extra: Extra<string> = {}): Setting<string | undefined> {
    return setting(t.isOptional(t.isString()), 'string', undefined, description, extra as Extra<string | undefined>)
  },
  oneOf<const V extends readonly string[]>(values: V, def: V[number], description: string, extra: Extra<V[number]> = {}): Setting<V[number]> & { choices: V } {
    return { ...setting(t.isEnum(values), values.join(' | '), def, description, extra), choices: values }
  },
  list(item: t.StrictValidator<unknown, string>, itemType: string, def: string[], description: string, extra: Extra<string[]> = {}): Setting<string[]> {
    return setting(t.isArray(item), `list of ${itemType}`, def, description, extra)
  },
  /** anything else: its own validator and type name */
  custom: setting,
  table<D extends SettingsDeclaration>(description: string, settings: D): { kind: 'table'; description: string; settings: D } {
    return { kind: 'table', description, settings }
  },
}

/** The validators the settings of several plugins share, with the type names the man page shows. */
export const kinds = {
  cidr: [isCidr, 'IPv4 CIDR'],
  cidrOrEmpty: [isCidrOrEmpty, 'IPv4 CIDR, or empty'],
  interfaceName: [isInterfaceName, 'interface name'],
  tcpMultiaddr: [isTcpMultiaddr, 'TCP multiaddr'],
  hostPort: [isHostPort, 'host:port'],
  endpointOrEmpty: [isEndpointOrEmpty, 'host:port, or empty'],
  ipv4Port: [isIpv4Port, 'ip:port'],
  ipv4MaybePort: [isIpv4MaybePort, 'ip or ip:port'],
  address: [isAddress, 'address (0x + 40 hex digits)'],
  lowerAddress: [isLowerAddress, 'address (0x + 40 lower-case hex digits)'],
} as const

function schemaOf(settings: SettingsDeclaration): t.StrictValidator<unknown, unknown> {
  const shape: Record<string, t.StrictValidator<unknown, unknown>> = {}
  for (const [key, d] of Object.entries(settings)) shape[key] = d.kind === 'table' ? schemaOf(d.settings) : d.validator
  return t.isObject(shape)
}

function defaultsOf(settings: SettingsDeclaration): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, d] of Object.entries(settings)) {
    // a key without a default stays absent, as when the operator leaves it out
    if (d.kind === 'table') out[key] = defaultsOf(d.settings)
    else if (d.default !== undefined) out[key] = d.default
  }
  return out
}

export interface DeclaredConfiguration<D extends SettingsDeclaration> extends PluginConfiguration<SettingsOf<D>> {
  settings: D
}

/** A plugin's `configuration` from its declared settings. */
export function defineSettings<D extends SettingsDeclaration>(settings: D): DeclaredConfiguration<D> {
  return { settings, schema: schemaOf(settings) as t.StrictValidator<unknown, SettingsOf<D>>, defaults: defaultsOf(settings) as SettingsOf<D> }
}

/** A setting by its dotted path below the plugin's table (`resources.vcpus`), for flags that set it. */
export function settingAt(settings: SettingsDeclaration, path: string): Setting<unknown> {
  let found: Setting<any> | SettingsTable | undefined
  let table: SettingsDeclaration | undefined = settings
  for (const key of path.split('.')) {
    found = table?.[key]
    table = found?.kind === 'table' ? found.settings : undefined
  }
  if (!found || found.kind !== 'setting') throw new Error(`no setting ${path}`)
  return found
}

/** Whether `value` passes the setting's validator, and typanion's reason when it does not. */
export function checkSetting(setting: Setting<unknown>, value: unknown): string | undefined {
  const errors: string[] = []
  if (setting.validator(value, { errors })) return undefined
  return errors.map((e) => e.replace(/^\.?: /, '')).join('; ')
}

/**
 * Refuses a value given outside the operator config (a flag, an environment variable) as the config
 * would refuse the setting it overrides, naming where the value came from.
 */
export function checkOverride<T>(source: string, setting: Setting<T>, value: unknown): T {
  const problem = checkSetting(setting, value)
  if (problem) throw new FormError('USAGE', `${source}: ${problem.replace(/^\.?\[\d+\]: /, '').replace(/^E/, 'e')}`, { hint: `see \`man 5 form-operator\` (${setting.type})` })
  return value as T
}

/** A flag's help from the setting it sets: the description's first sentence, and the default when it has a fixed one. */
export function flagHelp(setting: Setting<unknown>, suffix = '', showDefault = true): string {
  const first = setting.description.split(/(?<=\.)(?<!\b(?:e\.g|i\.e)\.) |: (?=loopback)/)[0].replace(/\.$/, '')
  // "vCPUs", "libp2p": a word that is not plain lower case keeps its spelling
  const head = /^[a-z]+\b(?![\d])/.test(first) ? first.charAt(0).toUpperCase() + first.slice(1) : first
  const fixed = showDefault && setting.default !== undefined && setting.example === undefined && !(Array.isArray(setting.default) && !setting.default.length) && setting.default !== ''
  return `${head}${suffix}${fixed ? ` (default ${String(setting.default)})` : ''}`
}

// ---- the template and the man page -------------------------------------------------------------

/** The column where the template's comments start. */
const COMMENT_COLUMN = 35
const WIDTH = 118

function tomlValue(value: unknown): string {
  // JSON's strings, numbers, booleans and arrays of them are TOML too (for the values settings take)
  return JSON.stringify(value)
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  for (const paragraph of text.split('\n')) {
    let line = ''
    for (const word of paragraph.split(' ')) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line)
        line = word
      } else line = line ? `${line} ${word}` : word
    }
    lines.push(line)
  }
  return lines
}

/** `key = value` with its description as a comment beside it, continued below at the same column. */
function keyLine(left: string, description: string): string[] {
  if (!description) return [left]
  const start = Math.max(COMMENT_COLUMN, left.length + 1)
  const text = wrap(description, WIDTH - start - 2)
  return [left.padEnd(start) + `# ${text[0]}`, ...text.slice(1).map((l) => ' '.repeat(start) + `# ${l}`)]
}

function renderTable(name: string, description: string, settings: SettingsDeclaration): string[] {
  const lines = keyLine(`[${name}]`, description)
  const tables: [string, SettingsTable][] = []
  for (const [key, d] of Object.entries(settings)) {
    if (d.kind === 'table') {
      tables.push([key, d])
      continue
    }
    if (d.before) lines.push(...wrap(d.before, WIDTH - 2).map((l) => `# ${l}`))
    if (d.default === undefined || d.example !== undefined) lines.push(...keyLine(`# ${key} = ${tomlValue(d.example ?? d.default ?? '')}`, d.description))
    else lines.push(...keyLine(`${key} = ${tomlValue(d.default)}`, d.description))
  }
  for (const [key, d] of tables) lines.push('', ...renderTable(`${name}.${key}`, d.description, d.settings))
  return lines
}

export interface SettingsOwner {
  name: string
  configuration?: PluginConfiguration<any> & { settings?: SettingsDeclaration }
}

/** templates/operator.toml: every declared setting at its default, described. */
export function renderOperatorTemplate(plugins: SettingsOwner[], header: string): string {
  const parts = [header.trimEnd()]
  for (const p of plugins) {
    const settings = p.configuration?.settings
    if (settings) parts.push(renderTable(p.name, '', settings).join('\n'))
  }
  return parts.join('\n\n') + '\n'
}

function roff(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1')
}

/** form-operator(5): the operator config, a section a table, each key with its type, default and description. */
export function renderSettingsManPage(plugins: SettingsOwner[], version: string, date: string, intro: string): string {
  const lines = [
    `.TH "FORM-OPERATOR" "5" "${date}" "form ${version}" "Formation manual"`,
    '.SH NAME',
    'form\\-operator \\- the operator config of a Formation node (operator.toml)',
    '.SH DESCRIPTION',
    roff(intro.trim()).replace(/\n\s*\n/g, '\n.PP\n'),
  ]
  const table = (name: string, description: string, settings: SettingsDeclaration) => {
    lines.push(`.SH [${roff(name)}]`)
    if (description) lines.push(roff(description))
    const sub: [string, SettingsTable][] = []
    for (const [key, d] of Object.entries(settings)) {
      if (d.kind === 'table') {
        sub.push([key, d])
        continue
      }
      const def = d.default === undefined ? 'none' : tomlValue(d.default)
      lines.push('.TP', `.B ${roff(key)}`, `(${roff(d.type)}; default ${roff(def)})`, '.br', roff(d.description.replace(/\n/g, ' ')))
    }
    for (const [key, d] of sub) table(`${name}.${key}`, d.description, d.settings)
  }
  for (const p of plugins) if (p.configuration?.settings) table(p.name, '', p.configuration.settings)
  lines.push('.SH SEE ALSO', '.BR form-kit-operator (1),', '.BR form-node-start (1)')
  return lines.join('\n') + '\n'
}
