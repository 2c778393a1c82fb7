import { Command, Option, type Cli, type CommandClass, type Definition } from 'clipanion'
import { FormCommand, type FormContext } from '../command.js'
import { FormError } from '../errors.js'
import type { LoadedPlugin } from '../loader.js'

/** Edit distance (insert, delete, substitute, swap two neighbours) between two words. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/** The candidates close to `word` (within a third of its length, at least 2 edits), closest first. */
export function closest(word: string, candidates: string[], max = 3): string[] {
  const limit = Math.max(2, Math.floor(word.length / 3))
  return [...new Set(candidates)]
    .map((c) => ({ c, d: c.startsWith(word) && word.length >= 2 ? 1 : editDistance(word, c) }))
    .filter(({ d }) => d <= limit)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, max)
    .map(({ c }) => c)
}

/**
 * What an option's value is, for help: `--replicas <n>`, `--file <path>` (Clipanion prints `#0`). A
 * command may name its own (`static valueNames = { '--timeout': 'duration' }`); else it is guessed
 * from the option's name.
 */
export function valueName(names: string[], own: Record<string, string> = {}): string {
  const given = names.map((n) => own[n]).find(Boolean)
  if (given) return given
  const long = (names.find((n) => n.startsWith('--')) ?? names[0]).replace(/^-+/, '')
  if (/(^|-)(replicas|timeout|lines|bytes|vcpus|limit|after|interval|ms|mb|gb|s|port|count)$/.test(long)) return 'n'
  if (/(file|dir|path|output|identity|keystore)$/.test(long)) return 'path'
  if (/^(node|host|url)$/.test(long)) return 'url'
  if (/^(listen|announce|bootstrap)$/.test(long)) return 'multiaddr'
  if (/cidr|subnet/.test(long)) return 'cidr'
  if (long === 'o') return 'option'
  return long.split('-').pop()!
}

/** The value names a command class declares for its options, if any. */
export function ownValueNames(command: unknown): Record<string, string> {
  const cls = (typeof command === 'function' ? command : (command as { constructor?: unknown } | null)?.constructor) as { valueNames?: Record<string, string> } | undefined
  return cls?.valueNames ?? {}
}

/** Replaces Clipanion's `#0` value placeholders with value names, in usage lines and option lists. */
export function withValueNames(text: string, own: Record<string, string> = {}): string {
  return text.replace(/((?:-{1,2}[\w-]+)(?:,-{1,2}[\w-]+)*)((?: #\d+)+)/g, (_, names: string, args: string) => {
    const more = args.trim().split(' ').length > 1
    return `${names} <${valueName(names.split(','), own)}>${more ? '...' : ''}`
  })
}

/** Every command path (`['pack', 'build']`) of the loaded plugins, read from the classes: no parsing. */
export function commandPaths(plugins: LoadedPlugin[]): string[][] {
  return plugins.flatMap(({ plugin }) => (plugin.commands ?? []).flatMap((c) => (c as CommandClass).paths ?? [])).filter((p) => p.length > 0)
}

export interface OptionInfo {
  names: string[]
  /** takes a value */
  value: boolean
  description: string
}

/** The options of a definition, parsed from Clipanion's `-f,--file #0` notation. */
export function optionsOf(def: Definition): OptionInfo[] {
  return def.options.map((o) => {
    const [names, ...rest] = o.definition.split(' ')
    return { names: names.split(','), value: rest.length > 0, description: o.description ?? '' }
  })
}

/** The definitions whose path starts with `group` (a path without the binary name). */
export function definitionsUnder(cli: Cli<FormContext>, group: string[]): Definition[] {
  return cli.definitions().filter((d) => {
    const path = d.path.split(' ').slice(1)
    return path.length > group.length && group.every((w, i) => path[i] === w) && !path[0].startsWith('-')
  })
}

/** The list of a group's commands, as `form pack --help` and `form help pack` print it. */
export function groupUsage(cli: Cli<FormContext>, plugins: LoadedPlugin[], group: string[]): string {
  const defs = definitionsUnder(cli, group)
  const name = `form ${group.join(' ')}`
  const owner = plugins.find(({ plugin }) => plugin.name === group[0])?.plugin.description
  const rows = defs.map((d) => [d.path.split(' ').slice(1 + group.length).join(' '), (d.description ?? '').trim()])
  const width = Math.max(...rows.map(([n]) => n.length)) + 2
  return [
    `${name}${owner ? `: ${owner}` : ''}`,
    '',
    `Usage: ${name} <command> [options]`,
    '',
    'Commands:',
    ...rows.map(([n, d]) => `  ${n.padEnd(width)}${d}`),
    '',
    `\`${name} <command> --help\` shows a command's options and examples; \`man form-${group.join('-')}-<command>\` the same as a page.`,
    '',
  ].join('\n')
}

/** Where argv goes: a command, a group's help, or an unknown command (with suggestions). */
export type Route = { kind: 'command'; path: string[] } | { kind: 'group'; group: string[] } | { kind: 'unknown'; error: FormError }

export function route(paths: string[][], argv: string[]): Route {
  const words: string[] = []
  for (const a of argv) {
    if (a.startsWith('-')) break
    words.push(a)
  }
  const matches = (p: string[], n: number) => n <= words.length && p.slice(0, n).every((w, i) => words[i] === w)
  const command = paths.filter((p) => matches(p, p.length)).sort((a, b) => b.length - a.length)[0]
  if (command) return { kind: 'command', path: command }
  if (words.length === 0) return { kind: 'command', path: [] } // options only: Clipanion's business
  let depth = 0
  while (depth < words.length && paths.some((p) => p.length > depth + 1 && matches(p, depth + 1))) depth++
  const group = words.slice(0, depth)
  if (depth > 0 && depth === words.length) return { kind: 'group', group }
  const wrong = words[depth]
  const children = [...new Set(paths.filter((p) => p.length > depth && matches(p, depth)).map((p) => p[depth]))]
  const near = closest(wrong, children)
  const where = ['form', ...group].join(' ')
  return {
    kind: 'unknown',
    error: new FormError('UNKNOWN_COMMAND', `\`${where} ${wrong}\` is not a command`, {
      exitCode: 1,
      hint: (near.length ? `did you mean ${near.map((n) => `\`${where} ${n}\``).join(' or ')}? ` : '') + `\`${group.length ? where + ' --help' : 'form help'}\` lists the commands`,
    }),
  }
}

/** An unknown option of a known command, with the closest options it has. */
export function unknownOption(def: Definition, option: string): FormError {
  const names = optionsOf(def).flatMap((o) => o.names)
  const near = closest(option, names)
  const name = def.path
  return new FormError('UNKNOWN_OPTION', `\`${name}\` has no option ${option}`, {
    hint: (near.length ? `did you mean ${near.join(' or ')}? ` : '') + `\`${name} --help\` lists its options`,
  })
}

export class HelpCommand extends FormCommand {
  static override paths = [['help']]
  static override usage = Command.Usage({
    description: 'List the commands, or the commands of a group',
    examples: [
      ['Every command', '$0 help'],
      ['The pack commands', '$0 help pack'],
      ['One command in full', '$0 help pack build'],
    ],
  })
  words = Option.Rest({ name: 'group' })

  async run() {
    const cli = this.context.formCli
    if (!cli) throw new FormError('INTERNAL', 'help needs the command line it belongs to')
    if (this.words.length === 0) {
      this.context.stdout.write(cli.usage(null))
      return 0
    }
    const r = route(commandPaths(this.context.plugins), this.words)
    if (r.kind === 'unknown') throw r.error
    if (r.kind === 'group') {
      this.context.stdout.write(groupUsage(cli, this.context.plugins, r.group))
      return 0
    }
    return cli.run([...r.path, '--help'], this.context)
  }
}
