import { createInterface } from 'node:readline/promises'
import { FormError } from '../../../../core/errors.js'
import { loadInstanceViews, type DesiredState, type StopReport } from '../../../instances/index.js'
import type { DesiredStateCommand } from '../desired.js'

/** Asks on the terminal whether to delete these instances; true for yes. */
async function ask(cmd: DesiredStateCommand, names: string[]): Promise<boolean> {
  const rl = createInterface({ input: cmd.context.stdin, output: cmd.context.stderr })
  try {
    const answer = await rl.question(`Delete ${names.join(', ')}? The VM, its disk and its address go; this cannot be undone. [y/N] `)
    return /^y(es)?$/i.test(answer.trim())
  } finally {
    rl.close()
  }
}

export async function desiredState(cmd: DesiredStateCommand) {
  if ((cmd.instance === undefined) === (cmd.buildId === undefined)) {
    throw new FormError('USAGE', 'name one instance, or give --build-id (not both)', { hint: `e.g. \`form manage ${cmd.target === 'running' ? 'start' : cmd.target === 'stopped' ? 'stop' : 'delete'} web-1\`` })
  }
  const seconds = Number(cmd.timeout)
  if (!(seconds > 0)) throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${cmd.timeout}")`)
  const stdin = cmd.context.stdin as NodeJS.ReadStream
  if (cmd.target === 'deleted' && !cmd.confirmed() && !stdin.isTTY) {
    throw new FormError('CONFIRMATION_REQUIRED', `deleting ${cmd.instance ?? `every instance of build ${cmd.buildId}`} cannot be undone, and there is no terminal to ask on`, { hint: 'pass --yes to delete without asking (for scripts)' })
  }
  const config = await cmd.userConfig()
  const { client, views } = await cmd.instances(config)
  const { selectInstances, writeDesired, followInstances } = await loadInstanceViews()
  const chosen = selectInstances(views, { instance: cmd.instance, buildId: cmd.buildId })
  const deleted = chosen.filter((v) => v.desired!.state === 'deleted')
  if (cmd.target !== 'deleted' && deleted.length) {
    throw new FormError('INSTANCE_DELETED', `instance ${deleted.map((v) => v.id).join(', ')} was deleted; its disk is gone`, { hint: 'ship the build again for a new instance (`form pack ship`)' })
  }
  const live = chosen.filter((v) => v.desired!.state !== 'deleted')
  if (cmd.target === 'deleted' && !cmd.confirmed() && live.length && !(await ask(cmd, live.map((v) => v.desired!.name && v.desired!.name !== v.id ? `${v.id} (${v.desired!.name})` : v.id)))) {
    cmd.context.stderr.write('nothing deleted\n')
    return 1
  }
  const signer = await cmd.signer()
  // a failure counts when it is a new report, not the one from before this write (no clocks compared)
  const before = new Map(chosen.map((v) => [v.id, v.observed?.updatedAt]))
  for (const v of chosen) await writeDesired(client, signer, v, cmd.target)
  const result: { id: string; name: string; node: string; desired: DesiredState; state: string; shutdown?: StopReport }[] = chosen.map((v) => ({ id: v.id, name: v.desired!.name, node: v.host ?? v.desired!.node, desired: cmd.target, state: v.observed?.state ?? 'unreported' }))
  if (cmd.wait) {
    // the node tells of every change to these records as it happens; nothing is re-read on a timer
    const stop = new AbortController()
    const timer = setTimeout(() => stop.abort(), seconds * 1000)
    let reached = false
    try {
      for await (const views of followInstances(client, config.address, stop.signal)) {
        const now = new Map(views.map((v) => [v.id, v]))
        for (const r of result) {
          const o = now.get(r.id)?.observed
          r.state = o?.state ?? r.state
          r.shutdown = cmd.target === 'stopped' && o?.state === 'stopped' ? o.shutdown : undefined
        }
        const failed = result.filter((r) => {
          const o = now.get(r.id)?.observed
          return o?.state === 'failed' && o.updatedAt !== before.get(r.id)
        })
        if (failed.length) {
          const reasons = failed.map((r) => `${r.id}: ${now.get(r.id)?.observed?.reason ?? 'no reason given'}`).join('; ')
          throw new FormError('INSTANCE_FAILED', `the hosting node could not make it ${cmd.target}: ${reasons}`, { hint: 'see `form manage list` and `form manage logs <instance>`', details: result })
        }
        if ((reached = result.every((r) => r.state === cmd.target))) break
      }
    } finally {
      clearTimeout(timer)
    }
    if (!reached) {
      throw new FormError('INSTANCE_WAIT_TIMEOUT', `still waiting after ${seconds} s: ${result.filter((r) => r.state !== cmd.target).map((r) => `${r.id} is ${r.state}`).join(', ')}`, { hint: 'the node keeps working on it; check with `form manage list`', exitCode: 4 })
    }
  }
  const how = (s?: StopReport) => (!s ? '' : s.how === 'powered-off' ? `, powered off by the guest in ${(s.ms / 1000).toFixed(1)} s` : `, forced after ${(s.ms / 1000).toFixed(1)} s: ${s.reason}`)
  cmd.print({ instances: result }, result.map((r) => `${r.id}${r.name && r.name !== r.id ? ` (${r.name})` : ''}: ${cmd.wait ? `${r.state}${how(r.shutdown)}` : `desired ${cmd.target}`}`).join('\n'))
}
