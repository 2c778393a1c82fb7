import { readFile } from 'node:fs/promises'
import { runningNodePid, acquirePidFile } from '../../../../core/daemon/socket.js'
import { runDetached } from '../../../../core/detach.js'
import { FormError } from '../../../../core/errors.js'
import { createLogger } from '../../../../core/log.js'
import { loadDeveloperFormnet, loadWireGuardKeys } from '../../../net/index.js'
import type { ManageFormnetUpCommand } from '../formnet-up.js'
import { formnetFiles } from './formnet-files.js'

const DETACHED_ENV = 'FORM_FORMNET_UP_DETACHED'

export async function manageFormnetUp(cmd: ManageFormnetUpCommand) {
  const config = await cmd.userConfig()
  const { address, cidr } = config.formnet
  if (!address || !cidr) throw new FormError('FORMNET_NOT_JOINED', 'this machine has no formnet address yet', { hint: 'run `form manage join` first' })
  if (!['auto', 'kernel', 'userspace'].includes(cmd.driver)) throw new FormError('USAGE', `--driver must be auto, kernel or userspace, not "${cmd.driver}"`)
  const intervalMs = Number(cmd.interval)
  if (!(intervalMs >= 500)) throw new FormError('USAGE', '--interval-ms must be a number of at least 500')
  const files = formnetFiles(cmd, config)
  const running = await runningNodePid(files.pidFile)
  if (running && running !== process.pid) {
    throw new FormError('FORMNET_UP_RUNNING', `formnet-up is already running (pid ${running})`, { hint: 'stop it with `form manage formnet-down`' })
  }
  const iface = config.formnet.interface ?? 'formnet'

  if (cmd.detach) {
    const pid = await runDetached({
      what: 'formnet-up',
      logFile: files.logFile,
      envFlag: DETACHED_ENV,
      isReady: async (pid) => (JSON.parse(await readFile(files.statusFile, 'utf8')) as { pid: number }).pid === pid,
      timeoutMs: 30_000,
    })
    cmd.print({ pid, interface: iface, address, logFile: files.logFile }, `formnet is up on ${iface} as ${address} (pid ${pid}); log: ${files.logFile}`)
    return 0
  }
  const { loadOrCreateWireGuardKeys } = await loadWireGuardKeys()
  const keys = await loadOrCreateWireGuardKeys(files.keyFile)
  const detached = process.env[DETACHED_ENV] === '1'
  const log = createLogger({ file: detached ? undefined : files.logFile, stderr: true, level: cmd.verbose ? 'debug' : 'info' })
  const client = await cmd.client({ url: cmd.nodeUrl(config, config.formnet.host) })
  const release = await acquirePidFile(files.pidFile, files.statusFile)
  const abort = new AbortController()
  const onSignal = () => abort.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const { runDeveloperInterface } = await loadDeveloperFormnet()
    await runDeveloperInterface({
      interface: iface,
      driver: cmd.driver as 'auto',
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
