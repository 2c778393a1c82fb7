import { Builtins, Cli, type CommandClass } from 'clipanion'
import type { FormContext } from './command.js'
import { commandPaths, groupUsage, ownValueNames, route, unknownOption, withValueNames } from './commands/help.js'
import { FormError } from './errors.js'
import { loadPlugins, type LoadedPlugin } from './loader.js'
import type { FormPlugin } from './plugin.js'
import { colorEnabled, paint, reportError } from './output.js'
import { resolvePaths, splitPathFlags } from './paths.js'
import { VERSION } from './version.js'

/** Clipanion's command line, with value names (`--replicas <n>`) where Clipanion prints `#0`. */
class FormCli extends Cli<FormContext> {
  /** the registered classes that have a usage, in Clipanion's order (definitions() lists only those) */
  private documented: CommandClass<FormContext>[] = []
  override register(command: CommandClass<FormContext>): void {
    super.register(command)
    if (command.usage !== undefined) this.documented.push(command)
  }
  override usage(...args: Parameters<Cli<FormContext>['usage']>): string {
    const text = super.usage(...args)
    if (args[0]) return alignOptions(withValueNames(text, ownValueNames(args[0])))
    // the list of every command: each line with its own command's value names
    const own = new Map(this.documented.flatMap((c) => (c.paths ?? []).map((p) => [`form ${p.join(' ')} `, ownValueNames(c)] as const)))
    return text.split('\n').map((line) => withValueNames(line, [...own].find(([prefix]) => line.trimStart().startsWith(prefix))?.[1])).join('\n')
  }
  override error(...args: Parameters<Cli<FormContext>['error']>): string {
    return withValueNames(super.error(...args))
  }
  override definitions(...args: Parameters<Cli<FormContext>['definitions']>): ReturnType<Cli<FormContext>['definitions']> {
    return super.definitions(...args).map((d, i) => {
      const own = ownValueNames(this.documented[i])
      return { ...d, usage: withValueNames(d.usage, own), options: d.options.map((o) => ({ ...o, definition: withValueNames(o.definition, own) })) }
    })
  }
}

/** Re-pads the option list of a command's help after the value names changed the widths. */
function alignOptions(text: string): string {
  const row = /^ {2}(-\S*(?: <[^>]+>(?:\.\.\.)?)?) {2,}(.*)$/
  const width = Math.max(0, ...text.split('\n').map((l) => row.exec(l)?.[1].length ?? 0))
  return text.split('\n').map((l) => l.replace(row, (_, def: string, desc: string) => `  ${def.padEnd(width + 2)}${desc}`)).join('\n')
}

/** The command line of form with the given plugins' commands; also used to generate the man pages. */
export function buildCli(plugins: LoadedPlugin[], colors = false): Cli<FormContext> {
  const cli = new FormCli({ binaryLabel: 'Formation', binaryName: 'form', binaryVersion: VERSION, enableColors: colors })
  cli.register(Builtins.HelpCommand)
  cli.register(Builtins.VersionCommand)
  for (const { plugin } of plugins) for (const command of plugin.commands ?? []) cli.register(command)
  return cli
}

/** Runs form's command line with `builtins` (app/builtins.ts) and the user's plugins. */
export async function main(argv: string[], builtins: FormPlugin[]): Promise<number> {
  const { overrides, rest } = splitPathFlags(argv)
  const paths = resolvePaths(overrides)
  const { plugins, problems } = await loadPlugins(builtins, paths.pluginDir)
  const c = paint(colorEnabled(process.stderr))
  for (const p of problems) process.stderr.write(`${c('yellow', 'warning')}: plugin "${p.name}" skipped: ${p.reason}\n`)
  const cli = buildCli(plugins, colorEnabled(process.stdout))
  // The general help needs no parsing; printing it directly skips building Clipanion's state machine
  // for every command, the largest cost of a cold start.
  if (rest.length === 0 || (rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h'))) {
    process.stdout.write(cli.usage(null))
    return 0
  }
  const context: FormContext = { ...Cli.defaultContext, plugins, problems, version: VERSION, overrides, formCli: cli }
  const fail = (error: FormError) => reportError(error, { json: rest.includes('--json'), verbose: false, stdout: process.stdout, stderr: process.stderr })
  // Groups (`form pack`) are not commands to Clipanion, and its "command not found" lists every command:
  // form answers both itself, from the command paths alone.
  const where = route(commandPaths(plugins), rest)
  if (where.kind === 'group') {
    process.stdout.write(groupUsage(cli, plugins, where.group))
    return 0
  }
  if (where.kind === 'unknown') return fail(where.error)
  let command
  try {
    command = cli.process(rest, context)
  } catch (error) {
    const name = `form ${where.path.join(' ')}`
    const def = cli.definitions().find((d) => d.path === name)
    const option = /Unsupported option name \("([^"]+)"\)/.exec((error as Error).message)?.[1]
    if (def && option) return fail(unknownOption(def, option))
    const message = withValueNames((error as Error).message.split('\n')[0]).replace(/\.$/, '')
    return fail(new FormError('USAGE', message, { hint: def ? `\`${name} --help\` shows its options` : '`form help` lists the commands' }))
  }
  return cli.run(command, context)
}
