import { Builtins, Cli } from 'clipanion'
import { builtinPlugins } from './builtins.js'
import type { FormContext } from './command.js'
import { loadPlugins, type LoadedPlugin } from './loader.js'
import { colorEnabled, paint } from './output.js'
import { resolvePaths, splitPathFlags } from './paths.js'
import { VERSION } from './version.js'

/** The command line of form with the given plugins' commands; also used to generate the man pages. */
export function buildCli(plugins: LoadedPlugin[], colors = false): Cli<FormContext> {
  const cli = new Cli<FormContext>({ binaryLabel: 'Formation', binaryName: 'form', binaryVersion: VERSION, enableColors: colors })
  cli.register(Builtins.HelpCommand)
  cli.register(Builtins.VersionCommand)
  for (const { plugin } of plugins) for (const command of plugin.commands ?? []) cli.register(command)
  return cli
}

export async function main(argv: string[]): Promise<number> {
  const { overrides, rest } = splitPathFlags(argv)
  const paths = resolvePaths(overrides)
  const { plugins, problems } = await loadPlugins(builtinPlugins, paths.pluginDir)
  const c = paint(colorEnabled(process.stderr))
  for (const p of problems) process.stderr.write(`${c('yellow', 'warning')}: plugin "${p.name}" skipped: ${p.reason}\n`)
  const cli = buildCli(plugins, colorEnabled(process.stdout))
  // The general help needs no parsing; printing it directly skips building Clipanion's state machine
  // for every command, the largest cost of a cold start.
  if (rest.length === 0 || (rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h'))) {
    process.stdout.write(cli.usage(null))
    return 0
  }
  return cli.run(rest, { ...Cli.defaultContext, plugins, problems, version: VERSION, overrides })
}
