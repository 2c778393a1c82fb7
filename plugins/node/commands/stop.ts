import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

export class NodeStopCommand extends FormCommand {
  static override paths = [['node', 'stop']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Stop the node running on this runtime directory',
    details: 'Sends SIGTERM and waits until the node has stopped its services and exited. Its VMs get the ACPI power button first and are forced off after `[node] shutdown_timeout_s`; it says which powered off and which were forced, and why (`vms` in `--json`). `--force` sends SIGKILL after the timeout.',
    examples: [
      ['Stop the local node', '$0 node stop'],
      ['Stop, killing it if it does not stop within 10 s', '$0 node stop --timeout 10 --force'],
    ],
  })
  timeout = Option.String('--timeout', '30', { description: 'Seconds to wait for a clean stop' })
  force = Option.Boolean('--force', false, { description: 'SIGKILL the node if it has not stopped by the timeout' })

  async run() {
    const { runningNodePid, terminate } = await import('../../../core/daemon/socket.js')
    const seconds = Number(this.timeout)
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${this.timeout}")`)
    }
    const pid = await runningNodePid(this.dirs.pidFile)
    if (pid === undefined) {
      this.print({ stopped: false, running: false }, `no node is running (no live pid in ${this.dirs.pidFile})`)
      return 0
    }
    const { stat } = await import('node:fs/promises')
    const logFrom = await stat(this.dirs.logFile).then((s) => s.size, () => 0)
    const ended = await terminate(pid, { timeoutMs: seconds * 1000, kill: this.force })
    if (ended === 'alive') {
      throw new FormError('NODE_STOP_TIMEOUT', `the node (pid ${pid}) is still stopping after ${seconds}s`, {
        hint: 'wait longer with --timeout, look at `form node logs`, or add --force to kill it',
      })
    }
    const vms = await vmStops(this.dirs.logFile, logFrom)
    const lines = vms.map((v) => `  ${v.instance}: ${v.how === 'powered-off' ? `powered off by the guest in ${((v.ms ?? 0) / 1000).toFixed(1)} s` : `forced${v.reason ? `: ${v.reason}` : ''}`}`)
    this.print({ stopped: true, pid, killed: ended === 'killed' || undefined, vms }, [`node stopped (pid ${pid})`, ...(vms.length ? [`its VMs:`, ...lines] : [])].join('\n'))
  }
}

/**
 * How the node's VMs stopped, from what the node logged while it stopped (after `from` bytes of its
 * log): the guest powered off, or the node forced it and why.
 */
async function vmStops(logFile: string, from: number): Promise<{ instance: string; how: 'powered-off' | 'forced'; ms?: number; reason?: string }[]> {
  const { readRange } = await import('../lib/hypervisor/process.js')
  const { stat } = await import('node:fs/promises')
  const size = await stat(logFile).then((s) => s.size, () => 0)
  const text = (await readRange(logFile, from, size)).toString('utf8')
  const found: { instance: string; how: 'powered-off' | 'forced'; ms?: number; reason?: string }[] = []
  for (const m of text.matchAll(/ (VM stopped|VM stop forced) (\{.*\})$/gm)) {
    try {
      const f = JSON.parse(m[2]) as { instance?: string; how?: string; ms?: number; reason?: string }
      if (typeof f.instance !== 'string' || f.how === 'not-running') continue
      found.push({ instance: f.instance, how: m[1] === 'VM stopped' && f.how === 'powered-off' ? 'powered-off' : 'forced', ms: f.ms, reason: f.reason })
    } catch {
      // not a line of ours
    }
  }
  return found
}
