// The `form` program: the core with the plugins that ship with it. The composition lives here, not in
// core/, so the core imports no plugin and a third-party plugin meets the same core the built-ins do.
import { main as runCli } from '../core/main.js'
import { builtinPlugins } from './builtins.js'

export function main(argv: string[]): Promise<number> {
  return runCli(argv, builtinPlugins)
}
