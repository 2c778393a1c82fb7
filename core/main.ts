import { Builtins, Cli } from 'clipanion'
import { builtinPlugins } from './builtins.js'
import type { FormContext } from './command.js'
import { loadPlugins, type LoadedPlugin } from './loader.js'
import { colorEnabled, paint } from './output.js'
import { pathOverridesFromArgv, resolvePaths } from './paths.js'
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
  const paths = resolvePaths(pathOverridesFromArgv(argv))
  const { plugins, problems } = await loadPlugins(builtinPlugins, paths.pluginDir)
  const c = paint(colorEnabled(process.stderr))
  for (const p of problems) process.stderr.write(`${c('yellow', 'warning')}: plugin "${p.name}" skipped: ${p.reason}\n`)
  const cli = buildCli(plugins, colorEnabled(process.stdout))
  return cli.run(argv, { ...Cli.defaultContext, plugins, problems, version: VERSION })
}
