import { stat } from 'node:fs/promises'
import { runningNodePid, terminate } from '../../../../core/daemon/socket.js'
import { FormError } from '../../../../core/errors.js'
import { readRange } from '../../lib/hypervisor/process.js'
import type { NodeStopCommand } from '../stop.js'

/**
 * How the node's VMs stopped, from what the node logged while it stopped (after `from` bytes of its
 * log): the guest powered off, or the node forced it and why.
 */
async function vmStops(logFile: string, from: number): Promise<{ instance: string; how: 'powered-off' | 'forced'; ms?: number; reason?: string }[]> {
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

export async function nodeStop(cmd: NodeStopCommand) {
  const seconds = Number(cmd.timeout)
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${cmd.timeout}")`)
  }
  const pid = await runningNodePid(cmd.dirs.pidFile)
  if (pid === undefined) {
    cmd.print({ stopped: false, running: false }, `no node is running (no live pid in ${cmd.dirs.pidFile})`)
    return 0
  }
  const logFrom = await stat(cmd.dirs.logFile).then((s) => s.size, () => 0)
  const ended = await terminate(pid, { timeoutMs: seconds * 1000, kill: cmd.force })
  if (ended === 'alive') {
    throw new FormError('NODE_STOP_TIMEOUT', `the node (pid ${pid}) is still stopping after ${seconds}s`, {
      hint: 'wait longer with --timeout, look at `form node logs`, or add --force to kill it',
    })
  }
  const vms = await vmStops(cmd.dirs.logFile, logFrom)
  const lines = vms.map((v) => `  ${v.instance}: ${v.how === 'powered-off' ? `powered off by the guest in ${((v.ms ?? 0) / 1000).toFixed(1)} s` : `forced${v.reason ? `: ${v.reason}` : ''}`}`)
  cmd.print({ stopped: true, pid, killed: ended === 'killed' || undefined, vms }, [`node stopped (pid ${pid})`, ...(vms.length ? [`its VMs:`, ...lines] : [])].join('\n'))
}
