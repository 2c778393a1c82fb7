import { Command, Option } from 'clipanion'
import { BuildCommand } from './status.js'
import { FAILOVER_S, REPLICAS } from '../../node/index.js'

export class PackShipCommand extends BuildCommand {
  static override paths = [['pack', 'ship']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Run redundant instances of a built image on the network',
    details: [
      `Writes the desired instances of your build (signed by your wallet): \`--replicas\` of them (default ${REPLICAS.default}, or \`ship.replicas\` in the CLI config: ~/.config/form/config.json, /etc/form/config.json as root), each on a different node. The scheduler picks live nodes (a heartbeat within --failover-after seconds) with room for the VCPU, MEM, DISK and GPU of the Formfile, nodes that already hold the image first; the same state gives the same placement.`,
      'Each replica also records the other fit nodes, best first: when its node misses heartbeats for --failover-after seconds, the next free one runs it (and gives it back when the node returns).',
      'Shipping again updates the replicas in place: a new image replaces the old one (fresh disks), a higher count adds replicas, a lower one deletes the last ones.',
      'Then shows each replica\'s node and state until all run and, when the image has health checks (HEALTHCHECK, or a TCP check for each EXPOSEd TCP port), pass them; a replica that fails, or turns unhealthy (with the failing check and why), fails the ship. Ctrl-C or --detach leaves them to the nodes (which restart an unhealthy replica with backoff); `form manage list` shows them later.',
    ].join('\n\n'),
    examples: [
      ['Ship the build of ./Formfile (3 replicas)', '$0 pack ship'],
      ['Two replicas, then print their addresses', '$0 pack ship --replicas 2 && form manage get-ip --build-id <id>'],
      ['Return once the records are written', '$0 pack ship --detach --json'],
    ],
  })
  replicas = Option.String('--replicas', { description: `How many instances, each on its own node (default ${REPLICAS.default})` })
  failoverAfter = Option.String('--failover-after', { description: `Seconds without a heartbeat after which a node counts as gone and its replicas move (default ${FAILOVER_S.default}, or ship.failoverAfterS in the CLI config)` })
  detach = Option.Boolean('--detach', false, { description: 'Write the desired instances and return' })
  timeout = Option.String('--timeout', '900', { description: 'Seconds to wait for every replica to run' })

  async run() {
    const { FormError } = await import('../../../core/errors.js')
    const { readBuild } = await import('../lib/follow.js')
    const { planShip, replicaProgress, shortfallNote } = await import('../lib/ship.js')
    const { instanceViews, listRecords, listInstances, readLiveness, writeDesiredRecord } = await (await import('../../manage/index.js')).loadInstanceRecords()
    type HealthReport = import('../../node/index.js').HealthReport

    const { config, build, owner } = await this.target()
    const shipDefaults = config.ship ?? {}
    const replicas = this.replicas === undefined ? (shipDefaults.replicas ?? REPLICAS.default) : Number(this.replicas)
    if (!Number.isInteger(replicas) || replicas < REPLICAS.min || replicas > REPLICAS.max) throw new FormError('USAGE', `--replicas must be a whole number from ${REPLICAS.min} to ${REPLICAS.max} (got "${this.replicas}")`)
    const failoverS = this.failoverAfter === undefined ? (shipDefaults.failoverAfterS ?? FAILOVER_S.default) : Number(this.failoverAfter)
    if (!Number.isInteger(failoverS) || failoverS < FAILOVER_S.min || failoverS > FAILOVER_S.max) throw new FormError('USAGE', `--failover-after must be a whole number of seconds from ${FAILOVER_S.min} to ${FAILOVER_S.max} (got "${this.failoverAfter}")`)
    const timeoutS = Number(this.timeout)
    if (!(timeoutS > 0)) throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${this.timeout}")`)

    const signer = await this.signer()
    const client = await this.client({ url: this.nodeUrl(config), signer })
    const view = await readBuild(client, owner, build)
    if (!view.request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build}`, { hint: 'build it first with `form pack build`' })
    const status = view.status
    if (status?.state !== 'built' || !status.image) {
      throw new FormError('BUILD_NOT_BUILT', `build ${build} is ${status?.state ?? 'not started'}; only a built image can be shipped`, {
        hint: status?.state === 'failed' ? 'fix the Formfile and run `form pack build` again' : 'wait for it: `form pack status`',
      })
    }
    if (!status.resources) throw new FormError('BUILD_TOO_OLD', `build ${build} was made by an older builder that did not record the image's resources`, { hint: 'run `form pack build` again' })

    const t0 = performance.now()
    const [nodes, instances, liveness] = await Promise.all([listRecords(client, 'nodes'), listRecords(client, 'instances'), readLiveness(client)])
    const existing = new Map(instanceViews(instances, liveness.seen, owner, liveness.now).map((v) => [v.id, v]))
    const plan = planShip({
      owner,
      build,
      name: status.name || view.request.name,
      image: status.image,
      resources: status.resources,
      replicas,
      failoverMs: failoverS * 1000,
      imageHolders: [view.request.node],
      nodes,
      instances,
      seen: liveness.seen,
      now: liveness.now,
    })
    const scheduledMs = performance.now() - t0
    for (const w of plan.writes) await writeDesiredRecord(client, signer, w.id, w.desired, existing.get(w.id)?.record?.t)
    const live = plan.writes.filter((w) => w.action !== 'delete')
    const short = (a: string) => `${a.slice(0, 10)}…`
    const notes = [
      ...[shortfallNote(plan, replicas)].filter((n) => n !== undefined),
      ...plan.writes.filter((w) => w.action === 'delete').map((w) => `${w.id}: deleted (above --replicas)`),
    ]
    for (const n of notes) this.context.stderr.write(`${n}\n`)

    type Row = { id: string; node: string; state: string; ip: string | null; reason?: string; health?: HealthReport; timings?: { imageMs?: number; diskMs?: number; bootMs?: number } }
    const ready = (r: Row) => replicaProgress(r) === 'ready'
    const rows: Row[] = live.map((w) => ({ id: w.id, node: w.desired.node, state: 'requested', ip: null }))
    const summary = () => ({ buildId: build, image: status.image, replicas: rows, scheduledMs: Math.round(scheduledMs) })
    if (this.detach) {
      this.print(summary(), () => [...rows.map((r) => `${r.id}: requested on node ${r.node}`), `follow them with: form manage list`].join('\n'))
      return 0
    }

    // a replica is done once its host reports it running after this ship (not from before it)
    const unchanged = new Set(plan.writes.filter((w) => w.action === 'update' && existing.get(w.id)?.desired?.image === w.desired.image).map((w) => w.id))
    const deadline = Date.now() + timeoutS * 1000
    const { Listr } = await import('listr2')
    const tty = Boolean((this.context.stdout as { isTTY?: boolean }).isTTY) && !this.json
    let settle: (() => void) | undefined
    let stop = false
    const poll = (async () => {
      while (!stop) {
        // a failed read (the node busy, say) changes nothing shown; the next one will
        const views = await listInstances(client, owner).catch(() => undefined)
        const now = new Map((views ?? []).map((v) => [v.id, v]))
        for (const r of views ? rows : []) {
          const v = now.get(r.id)
          const o = v?.observed
          r.node = v?.host ?? r.node
          const fresh = o && (unchanged.has(r.id) || o.updatedAt !== existing.get(r.id)?.observed?.updatedAt)
          r.state = fresh ? o.state : 'requested'
          r.ip = fresh && o.state === 'running' ? (o.ip ?? null) : null
          r.timings = fresh ? o.timings : undefined
          r.reason = fresh && o.state === 'failed' ? (o.reason ?? 'no reason given') : undefined
          r.health = fresh && (o.state === 'running' || o.state === 'booting') ? o.health : undefined
        }
        settle?.()
        await new Promise((res) => setTimeout(res, 700))
      }
    })()
    const waitFor = async (row: Row, task: { title: string }) => {
      for (;;) {
        task.title = `${row.id} on ${short(row.node)}: ${row.state}${row.health ? `, ${row.health.state}` : ''}${row.ip ? ` at ${row.ip}` : ''}${row.health?.reason ? `: ${row.health.reason}` : ''}`
        if (ready(row)) return
        if (replicaProgress(row) === 'unhealthy') throw new FormError('SHIP_REPLICA_UNHEALTHY', `${row.id} is unhealthy on node ${row.node}: ${row.health?.reason ?? 'no reason given'}`, { hint: `its node restarts it with backoff; see \`form manage list\` and \`form manage logs ${row.id}\`` })
        if (row.state === 'failed') throw new FormError('SHIP_REPLICA_FAILED', `${row.id} failed on node ${row.node}: ${row.reason}`, { hint: `see \`form manage logs ${row.id}\`; the node retries on its own` })
        if (Date.now() > deadline) throw new FormError('SHIP_TIMEOUT', `${row.id} is still ${row.state} after ${timeoutS} s`, { hint: 'the nodes keep working on it; check with `form manage list`', exitCode: 4 })
        await new Promise<void>((res) => {
          settle = res
          setTimeout(res, 1000)
        })
      }
    }
    const tasks = new Listr(
      rows.map((row) => ({ title: `${row.id} on ${short(row.node)}`, task: (_: unknown, task: { title: string }) => waitFor(row, task) })),
      { concurrent: true, exitOnError: false, renderer: 'default', fallbackRenderer: 'simple', fallbackRendererCondition: !tty, silentRendererCondition: this.json, registerSignalListeners: false } as never,
    )
    const onInterrupt = () => {
      this.context.stderr.write(`\nStopped following; the nodes go on. See them with: form manage list\n`)
      process.exit(0)
    }
    process.once('SIGINT', onInterrupt)
    try {
      await tasks.run()
    } finally {
      stop = true
      process.off('SIGINT', onInterrupt)
      await poll.catch(() => {})
    }
    const failed = rows.filter((r) => !ready(r))
    const result = { ...summary(), readyMs: Math.round(performance.now() - t0) }
    if (failed.length) {
      if (this.json) this.context.stdout.write(JSON.stringify(result, null, 2) + '\n')
      const progress = failed.map(replicaProgress)
      const code = progress.includes('failed') ? 'SHIP_REPLICA_FAILED' : progress.includes('unhealthy') ? 'SHIP_REPLICA_UNHEALTHY' : 'SHIP_TIMEOUT'
      const why = (r: Row) => `${r.id} (${r.state}${r.health ? `, ${r.health.state}` : ''}${r.reason ? `: ${r.reason.split('\n')[0]}` : r.health?.reason ? `: ${r.health.reason}` : ''})`
      throw new FormError(code, `${failed.length} of ${rows.length} replicas are not running${rows.some((r) => r.health) ? ' and healthy' : ''}: ${failed.map(why).join(', ')}`, {
        hint: 'see `form manage list` and `form manage logs <instance>`',
        // a replica that failed or turned unhealthy broke the deploy; one still on its way only ran out of time
        exitCode: code === 'SHIP_TIMEOUT' ? 4 : 1,
      })
    }
    this.print(result, () => [`${rows.length} replica${rows.length === 1 ? '' : 's'} of build ${build} running:`, ...rows.map((r) => `  ${r.id}  ${r.ip}  (node ${r.node}${r.health ? `, ${r.health.state}: ${r.health.checks} check${r.health.checks === 1 ? '' : 's'} pass` : ''})`), `ssh to one: form manage ssh ${rows[0].id}`].join('\n'))
    return 0
  }
}
