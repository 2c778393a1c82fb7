import type { NodeClient } from '../../../../core/client.js'
import { table } from '../../../../core/output.js'
import { loadInstanceViews } from '../../../instances/index.js'
import type { HealthReport } from '../../../instances/index.js'
import type { UserConfig } from '../../../kit/index.js'
import type { ManageListCommand } from '../list.js'

/** Why a replica is unhealthy and when its node restarts it, or how often it was restarted and why. */
export function healthNote(h: HealthReport, now = Date.now()): string {
  const times = (n: number) => `${n} time${n === 1 ? '' : 's'}`
  if (h.state === 'unhealthy') {
    const when = h.restartAt === undefined ? '' : h.restartAt <= now ? '; its node is restarting it' : `; its node restarts it in ${Math.ceil((h.restartAt - now) / 1000)} s`
    return `unhealthy: ${h.reason ?? 'no reason given'}${when}${h.restarts ? ` (restarted ${times(h.restarts)} already)` : ''}`
  }
  return `restarted ${times(h.restarts)} by its node for failing health checks; the last: ${h.lastFailure?.reason ?? 'no reason given'} (${Math.max(0, Math.round((now - (h.lastFailure?.at ?? now)) / 1000))} s ago)`
}

export async function manageList(cmd: ManageListCommand) {
  const config = await cmd.userConfig()
  const { client, views: every } = await cmd.instances(config)
  // gone for good: deleted as asked, and its node says so (or no node ever reported it)
  const gone = (v: (typeof every)[number]) => v.desired!.state === 'deleted' && (v.observed === undefined || v.observed.state === 'deleted')
  const views = cmd.all ? every : every.filter((v) => !gone(v))
  const hidden = every.length - views.length
  const rows = views.map((v) => ({
    id: v.id,
    name: v.desired!.name,
    buildId: v.desired!.buildId,
    node: v.host ?? v.desired!.node,
    desired: v.desired!.state,
    state: v.observed?.state ?? 'unreported',
    ip: v.observed?.ip ?? null,
    reason: v.observed?.reason ?? null,
    // how a stopped instance went down: its guest powered off, or its node forced it (and why)
    shutdown: v.observed?.state === 'stopped' ? (v.observed.shutdown ?? null) : null,
    // whether its service answers the image's health checks (running and booting replicas of images with checks)
    health: v.observed?.state === 'running' || v.observed?.state === 'booting' ? (v.observed.health ?? null) : null,
    backend: v.observed?.backend ?? null,
    updatedAt: v.observed?.updatedAt ?? null,
    consoleTail: null as string | null,
  }))
  await addConsoleTails(cmd, config, client, rows)
  const note = hidden ? `(${hidden} deleted instance${hidden === 1 ? '' : 's'} not shown; --all shows them)\n` : ''
  cmd.print({ owner: config.address, instances: rows, hiddenDeleted: hidden }, () => {
    if (!rows.length) return `no instances (ship a build with \`form pack ship\`)\n${note}`
    const lines = table(
      rows.map((r) => [r.id, r.name || '-', r.buildId.slice(0, 12) || '-', r.desired, r.state === 'failed' ? cmd.color('red', r.state) : r.state, r.health ? (r.health.state === 'unhealthy' ? cmd.color('red', 'unhealthy') : r.health.state) : '-', r.ip ?? '-', `${r.node.slice(0, 10)}…`]),
      ['ID', 'NAME', 'BUILD', 'DESIRED', 'STATE', 'HEALTH', 'IP', 'NODE'],
    )
    return (
      lines +
      rows
        .filter((x) => x.state === 'failed' && x.reason)
        .map((r) => `${r.id}: ${r.reason}\n${r.consoleTail ? `${r.consoleTail.split('\n').slice(-8).join('\n').replace(/^/gm, '  | ')}\n` : `  (its console: form manage logs ${r.id})\n`}`)
        .join('') +
      rows
        .filter((x) => x.health && (x.health.state === 'unhealthy' || x.health.restarts > 0))
        .map((r) => `${r.id}: ${healthNote(r.health!)}\n`)
        .join('') +
      rows
        .filter((x) => x.shutdown?.how === 'forced')
        .map((r) => `${r.id}: its last stop was forced: ${r.shutdown!.reason ?? 'no reason given'}\n`)
        .join('') +
      note
    )
  })
}

/** The console tails of the failed instances hosted by the node this command talks to, from that node (owner-signed). */
async function addConsoleTails(cmd: ManageListCommand, config: UserConfig, client: NodeClient, rows: { id: string; node: string; state: string; consoleTail: string | null }[]): Promise<void> {
  const failed = rows.filter((r) => r.state === 'failed')
  if (!failed.length) return
  const here = (await client.get<{ address: string }>('/v1/state/info').catch(() => undefined))?.address
  const local = failed.filter((r) => r.node === here)
  if (!local.length) return
  const signed = await cmd.signedClient(config, cmd.nodeUrl(config)).catch(() => undefined)
  if (!signed) return
  const { consoleTail } = await loadInstanceViews()
  for (const r of local) r.consoleTail = (await consoleTail(signed, r.id).catch(() => '')) || null
}
