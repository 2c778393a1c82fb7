import { Command, Option, type BaseContext, type Cli } from 'clipanion'
import type { Signer } from './auth/sign.js'
import type { NodeClient } from './client.js'
import type { LoadedPlugin, PluginProblem } from './loader.js'
import { colorEnabled, paint, reportError, toJson } from './output.js'
import { resolvePaths, type PathOverrides, type Paths } from './paths.js'

/** What every command can reach besides stdio: the plugins this run loaded. */
export interface FormContext extends BaseContext {
  plugins: LoadedPlugin[]
  problems: PluginProblem[]
  version: string
  /** --config-dir, --data-dir, --runtime-dir and --config, taken out of argv by main */
  overrides: PathOverrides
  /** the command line this run parses (help and completion read its definitions) */
  formCli?: Cli<FormContext>
}

/**
 * Base class of every `form` command: the shared flags (--json, --verbose; the path flags are taken
 * out of argv by main, see splitPathFlags), error reporting, and access to the node client.
 * Subclasses implement `run()`.
 */
export abstract class FormCommand extends Command<FormContext> {
  json = Option.Boolean('--json', false, { description: 'Print machine-readable JSON' })
  verbose = Option.Boolean('--verbose', false, { hidden: true, description: 'Show stack traces and debug output' })

  abstract run(): Promise<number | void>

  async execute(): Promise<number> {
    try {
      return (await this.run()) ?? 0
    } catch (error) {
      return reportError(error, { json: this.json, verbose: this.verbose, stdout: this.context.stdout, stderr: this.context.stderr })
    }
  }

  private cachedPaths?: Paths
  get dirs(): Paths {
    this.cachedPaths ??= resolvePaths(this.context.overrides ?? {})
    return this.cachedPaths
  }

  /**
   * A client for a node API (imported lazily: got is not needed for --help): the local node's socket,
   * or the node at `url`. With a signer, mutating requests carry its signature.
   */
  async client(options: { signer?: Signer; url?: string } = {}): Promise<NodeClient> {
    const { createClient } = await import('./client.js')
    const target = options.url ? { url: options.url } : { socket: this.dirs.socket }
    const signer = options.signer
    if (!signer) return createClient(target)
    const { signRequest } = await import('./auth/sign.js')
    return createClient({ ...target, signer: (req) => signRequest({ ...req, signer }) })
  }

  get color() {
    return paint(colorEnabled(this.context.stdout as unknown as { isTTY?: boolean; write(s: string): unknown }))
  }

  /** Prints `data` as JSON with --json, else the human text. */
  print(data: unknown, human: string | (() => string)): void {
    if (this.json) this.context.stdout.write(toJson(data))
    else {
      const text = typeof human === 'function' ? human() : human
      this.context.stdout.write(text.endsWith('\n') || text === '' ? text : text + '\n')
    }
  }
}
