import { loadInstanceViews } from '../../../instances/index.js'
import { loadFormfiles } from '../../../pack/index.js'
import type { ManageGetIpCommand } from '../get-ip.js'

export async function manageGetIp(cmd: ManageGetIpCommand) {
  const config = await cmd.userConfig()
  cmd.buildId ??= await (await loadFormfiles()).formfileBuildId(cmd, config.address, cmd.file)
  const { views } = await cmd.instances(config)
  const { selectInstances } = await loadInstanceViews()
  const replicas = selectInstances(views, { buildId: cmd.buildId })
    .filter((v) => v.desired!.state !== 'deleted')
    .map((v) => ({ id: v.id, name: v.desired!.name, node: v.host ?? v.desired!.node, state: v.observed?.state ?? 'unreported', ip: v.observed?.state === 'deleted' ? null : (v.observed?.ip ?? null) }))
  cmd.print({ buildId: cmd.buildId, replicas }, () => {
    const lines = replicas.filter((r) => r.ip).map((r) => r.ip!)
    return lines.length ? lines.join('\n') : `no replica of build ${cmd.buildId} has an address yet (${replicas.map((r) => `${r.id}: ${r.state}`).join(', ') || 'none'})`
  })
  return replicas.some((r) => r.ip) ? 0 : 1
}
