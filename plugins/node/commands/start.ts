import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

const DETACHED_ENV = 'FORM_NODE_DETACHED'

export class NodeStartCommand extends FormCommand {
  static override paths = [['node', 'start']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Run a Formation node: every plugin service, and the node API',
    details: `
      Starts the services of every plugin in dependency order (state, p2p, sync, formnet, vmm, builder, ...) and serves the local API on a Unix socket in the runtime directory. With no operator config this is a complete one-node devnet. SIGINT or SIGTERM stops the services in reverse order.

      Several nodes can run on one machine when each has its own \`--data-dir\` and \`--runtime-dir\`.

      A node joins another operator's network by naming its genesis admins (\`[state] admins\`, or FORM_ADMINS, comma-separated addresses) and bootstrapping from one of its nodes; it then waits for an admin to run \`form node admit <its address>\` (\`form node status\` shows the command).
    `,
    examples: [
      ['Run a one-node devnet in the foreground', '$0 node start'],
      ['Run in the background, with a pid file and a log file', '$0 node start --detach'],
      ['Use an operator config', '$0 node start --config /etc/form/operator.toml'],
      ['A second node beside the first', '$0 node start --data-dir /tmp/n2 --runtime-dir /tmp/n2/run --detach'],
      ['Let developers on other machines reach this node (form manage join)', '$0 node start --api-listen 0.0.0.0:3004'],
      ['Join the network whose admin is 0x11…11', 'FORM_ADMINS=0x1111111111111111111111111111111111111111 $0 node start --bootstrap /ip4/192.168.1.10/tcp/3010/p2p/12D3Koo...'],
    ],
  })
  detach = Option.Boolean('--detach,-d', false, { description: 'Run in the background; print the pid once the node answers' })
  listen = Option.Array('--listen', { description: 'libp2p listen multiaddr, repeatable (env FORM_LISTEN, comma-separated; overrides [net] listen)' })
  bootstrap = Option.Array('--bootstrap', { description: 'Bootstrap peer multiaddr, repeatable (env FORM_BOOTSTRAP; overrides [net] bootstrap)' })
  apiListen = Option.Array('--api-listen', { description: 'Serve the node API to remote callers on host:port, repeatable (env FORM_API_LISTEN; overrides [node] api_listen)' })

  async run() {
    if (this.detach) return this.startDetached()
    const { loadOperatorConfig, resolveSections } = await import('../../../core/config.js')
    const { resolvePaths } = await import('../../../core/paths.js')
    const { createLogger } = await import('../../../core/log.js')
    const { startNode } = await import('../../../core/daemon/host.js')

    const { file, raw } = await loadOperatorConfig(this.dirs.operatorConfig, this.dirs.operatorConfigExplicit)
    const plugins = this.context.plugins.map((p) => p.plugin)
    // logged once the log exists: the table of a removed plugin must not stop the node
    const configWarnings: FormError[] = []
    const sections = resolveSections(file, raw, plugins, (problem) => configWarnings.push(problem))
    const fromEnv = (name: string) => process.env[name]?.split(',').map((s) => s.trim()).filter(Boolean)
    const listen = this.listen ?? fromEnv('FORM_LISTEN')
    const bootstrap = this.bootstrap ?? fromEnv('FORM_BOOTSTRAP')
    const formnet = process.env.FORM_FORMNET || undefined
    if (sections.net && (listen || bootstrap || formnet)) {
      const { netConfiguration } = await import('../../net/index.js')
      const { validateSection } = await import('../../../core/config.js')
      const net = { ...sections.net, listen: listen ?? sections.net.listen, bootstrap: bootstrap ?? sections.net.bootstrap, formnet: formnet ?? sections.net.formnet }
      sections.net = validateSection('--listen/--bootstrap/FORM_FORMNET', 'net', net, netConfiguration.schema, netConfiguration.defaults)
    }
    const admins = fromEnv('FORM_ADMINS')
    if (sections.state && admins) {
      const { validateSection } = await import('../../../core/config.js')
      const { stateConfiguration } = await import('../../state/index.js')
      sections.state = validateSection('FORM_ADMINS', 'state', { ...sections.state, admins }, stateConfiguration.schema, stateConfiguration.defaults)
    }
    let paths = this.dirs
    const overrides = this.context.overrides ?? {}
    if (sections.node?.data_dir && !overrides.dataDir && !process.env.FORM_DATA_DIR) {
      paths = resolvePaths({ ...overrides, dataDir: sections.node.data_dir })
    }
    let measured: string[] = []
    if (sections.node) {
      // [node.resources] keys the operator left out are measured on this host (minus [node.reserve])
      const { offeredResources } = await import('../index.js')
      const { measured: keys, ...offered } = offeredResources(raw.node, sections.node.reserve, paths.dataDir)
      sections.node = { ...sections.node, resources: offered }
      measured = keys
    }
    const detached = process.env[DETACHED_ENV] === '1'
    const log = createLogger({ file: paths.logFile, stderr: !detached, level: this.verbose ? 'debug' : 'info' })
    log.info(`form ${this.context.version} starting`, { pid: process.pid, dataDir: paths.dataDir, config: file ?? 'built-in defaults' })
    for (const w of configWarnings) log.warn(`${w.message}: ignored`, { hint: w.hint })
    if (sections.node) log.info('resources offered', { ...sections.node.resources, measured: measured.join(',') || 'none: all from [node.resources]' })

    const apiListen = this.apiListen ?? fromEnv('FORM_API_LISTEN') ?? sections.node?.api_listen
    const thirdParty = this.context.plugins.filter((p) => !p.builtin).map((p) => p.plugin.name)
    const node = await startNode({ plugins, paths, sections, configFile: file, log, version: this.context.version, apiListen, thirdParty })
    if (!detached) this.context.stderr.write(`node running (pid ${process.pid}); API on ${paths.socket}; Ctrl-C to stop\n`)

    return new Promise<number>((resolve) => {
      let signals = 0
      const onSignal = (signal: NodeJS.Signals) => {
        if (++signals > 1) {
          log.warn(`second ${signal}: exiting without a clean stop`)
          process.exit(130)
        }
        log.info(`received ${signal}`)
        node.stop().then(
          () => resolve(0),
          (error: Error) => {
            log.error('stop failed', { error: error.message })
            resolve(1)
          },
        )
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    })
  }

  /** Re-runs this command in the background, and waits until the node answers. */
  private async startDetached(): Promise<number> {
    const { createClient } = await import('../../../core/client.js')
    const { runningNodePid } = await import('../../../core/daemon/socket.js')
    const { runDetached } = await import('../../../core/detach.js')
    const paths = this.dirs
    const already = await runningNodePid(paths.pidFile)
    if (already) {
      throw new FormError('NODE_ALREADY_RUNNING', `a node is already running (pid ${already}, socket ${paths.socket})`, {
        hint: 'stop it with `form node stop`, or give this node its own --runtime-dir and --data-dir',
      })
    }
    const client = createClient({ socket: paths.socket, timeoutMs: 2000 })
    const pid = await runDetached({
      what: 'the node',
      logFile: paths.logFile,
      envFlag: DETACHED_ENV,
      isReady: async (pid) => (await client.get<{ pid: number }>('/v1/health')).pid === pid,
      timeoutMs: Number(process.env.FORM_NODE_READY_TIMEOUT_MS ?? 60_000),
    })
    this.print({ pid, socket: paths.socket, logFile: paths.logFile }, `node started in the background (pid ${pid})\nAPI: ${paths.socket}\nlog: ${paths.logFile}`)
    return 0
  }
}
