import { Command, Option } from 'clipanion'
import { readFile } from 'node:fs/promises'
import { FormError } from '../../../core/errors.js'
import { DeveloperCommand } from './shared.js'

const DETACHED_ENV = 'FORM_FORMNET_UP_DETACHED'

export class ManageFormnetUpCommand extends DeveloperCommand {
  static override paths = [['manage', 'formnet-up']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Bring this machine\'s formnet interface up and keep it in sync with the network',
    details: `
      Creates the WireGuard interface (the kernel's, else wireguard-go; needs root), gives it the address from \`form manage join\` (a /32), and then asks the node for the list of nodes every few seconds, updates the peers and routes each node's subnet through the interface. Only subnets inside the formnet range are routed, and never one that overlaps this machine's own addresses, routes or DNS resolvers (it is logged and left out instead), so formnet never takes traffic this machine sends elsewhere. Where systemd-resolved runs, \`.fog\` names are sent to the admitting node's DNS (\`resolvectl dns <interface> <node>\` and \`resolvectl domain <interface> ~fog\`; the log says what was done), so \`ssh dev@hello-web-1.fog\` works from this machine. Runs in the foreground (for systemd) until SIGINT/SIGTERM, then removes the interface. \`--detach\` runs it in the background with a pid file; stop it with \`form manage formnet-down\`.
    `,
    examples: [
      ['In the foreground', 'sudo $0 manage formnet-up'],
      ['In the background', 'sudo $0 manage formnet-up --detach'],
    ],
  })
  detach = Option.Boolean('--detach,-d', false, { description: 'Run in the background; returns once the interface is up and synced' })
  interval = Option.String('--interval-ms', '5000', { description: 'How often to fetch the node list' })
  driver = Option.String('--driver', 'auto', { description: 'WireGuard implementation: auto, kernel or userspace' })

  async run() {
    const config = await this.userConfig()
    const { address, cidr } = config.formnet
    if (!address || !cidr) throw new FormError('FORMNET_NOT_JOINED', 'this machine has no formnet address yet', { hint: 'run `form manage join` first' })
    if (!['auto', 'kernel', 'userspace'].includes(this.driver)) throw new FormError('USAGE', `--driver must be auto, kernel or userspace, not "${this.driver}"`)
    const intervalMs = Number(this.interval)
    if (!(intervalMs >= 500)) throw new FormError('USAGE', '--interval-ms must be a number of at least 500')
    const files = this.formnetFiles(config)
    const { runningNodePid } = await import('../../../core/daemon/socket.js')
    const running = await runningNodePid(files.pidFile)
    if (running && running !== process.pid) {
      throw new FormError('FORMNET_UP_RUNNING', `formnet-up is already running (pid ${running})`, { hint: 'stop it with `form manage formnet-down`' })
    }
    const iface = config.formnet.interface ?? 'formnet'

    if (this.detach) {
      const { runDetached } = await import('../../../core/detach.js')
      const pid = await runDetached({
        what: 'formnet-up',
        logFile: files.logFile,
        envFlag: DETACHED_ENV,
        isReady: async (pid) => (JSON.parse(await readFile(files.statusFile, 'utf8')) as { pid: number }).pid === pid,
        timeoutMs: 30_000,
      })
      this.print({ pid, interface: iface, address, logFile: files.logFile }, `formnet is up on ${iface} as ${address} (pid ${pid}); log: ${files.logFile}`)
      return 0
    }

    const { acquirePidFile } = await import('../../../core/daemon/socket.js')
    const { createLogger } = await import('../../../core/log.js')
    const { loadDeveloperFormnet, loadWireGuardKeys } = await import('../../net/index.js')
    const { loadOrCreateWireGuardKeys } = await loadWireGuardKeys()
    const keys = await loadOrCreateWireGuardKeys(files.keyFile)
    const detached = process.env[DETACHED_ENV] === '1'
    const log = createLogger({ file: detached ? undefined : files.logFile, stderr: true, level: this.verbose ? 'debug' : 'info' })
    const client = await this.client({ url: this.nodeUrl(config, config.formnet.host) })
    const release = await acquirePidFile(files.pidFile, files.statusFile)
    const abort = new AbortController()
    const onSignal = () => abort.abort()
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    try {
      const { runDeveloperInterface } = await loadDeveloperFormnet()
      await runDeveloperInterface({
        interface: iface,
        driver: this.driver as 'auto',
        address,
        cidr,
        privateKey: keys.privateKey,
        fetchPeers: async () => (await client.get<{ peers: [] }>('/v1/net/peers')).peers,
        intervalMs,
        wireguardPidFile: files.wireguardPidFile,
        statusFile: files.statusFile,
        log,
        signal: abort.signal,
      })
    } finally {
      await release()
    }
    return 0
  }
}
