import { Command, Option } from 'clipanion'
import { BuildCommand } from './status.js'
import { FAILOVER_S, loadInstanceViews, REPLICAS } from '../../instances/index.js'

export class PackShipCommand extends BuildCommand {
  static override paths = [['pack', 'ship']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Run redundant instances of a built image on the network',
    details: [
      `Writes the desired instances of your build (signed by your wallet): \`--replicas\` of them (default ${REPLICAS.default}, or \`ship.replicas\` in the CLI config: ~/.config/form/config.json, /etc/form/config.json as root), each on a different node. The scheduler picks live nodes (a heartbeat within --failover-after seconds) with room for the VCPU, MEM, DISK and GPU of the Formfile, nodes that already hold the image first; the same state gives the same placement.`,
      'Each replica also records the other fit nodes, best first: when its node misses heartbeats for --failover-after seconds, the next free one runs it (and gives it back when the node returns).',
      'Shipping again updates the replicas in place: a higher count adds replicas, a lower one deletes the last ones, and a new image replaces the old one (fresh disks). New and deleted replicas go at once. Running replicas that get a new image are replaced a few at a time (--strategy rolling, the default): --max-unavailable of them (default 1) are rebooted on the new image while the others keep serving the old one, and the next ones follow only once these run and pass their health checks. With 2 replicas on 2 nodes, one is replaced while the other serves, then the other.',
      'A replica that fails (its VM exits or panics, say: the ship ends at once, with the last lines of its console, which only you as its owner can read) or turns unhealthy (with the failing check and why) stops the rollout: the replicas not yet replaced keep running the old image, and the error names them. Fix the image and ship again to go on; ship the previous build to roll back. --strategy immediate writes every replica at once (every replaced replica is down while it reboots).',
      'Then shows each replica\'s node and state until all run and, when the image has health checks (HEALTHCHECK, or a TCP check for each EXPOSEd TCP port), pass them. Ctrl-C leaves what was written to the nodes (which restart an unhealthy replica with backoff); --detach writes everything at once and returns (with a rollout to do, only with --strategy immediate). `form manage list` shows them later. --json prints the replicas and the rollout steps (each with its replicas, time and result).',
    ].join('\n\n'),
    examples: [
      ['Ship the build of ./Formfile (3 replicas)', '$0 pack ship'],
      ['Two replicas, then print their addresses', '$0 pack ship --replicas 2 && form manage get-ip --build-id <id>'],
      ['Return once the records are written', '$0 pack ship --detach --json'],
      ['Ship a new image to 4 replicas, two at a time', '$0 pack ship --replicas 4 --max-unavailable 2'],
      ['Replace every replica at once (an outage while they reboot)', '$0 pack ship --strategy immediate'],
    ],
  })
  replicas = Option.String('--replicas', { description: `How many instances, each on its own node (default ${REPLICAS.default})` })
  failoverAfter = Option.String('--failover-after', { description: `Seconds without a heartbeat after which a node counts as gone and its replicas move (default ${FAILOVER_S.default}, or ship.failoverAfterS in the CLI config)` })
  detach = Option.Boolean('--detach', false, { description: 'Write the desired instances and return' })
  strategy = Option.String('--strategy', 'rolling', { description: 'How a new image replaces running replicas: rolling (a few at a time, each new one healthy before the next) or immediate (all at once: an outage)' })
  maxUnavailable = Option.String('--max-unavailable', { description: 'With --strategy rolling: how many replicas are replaced at a time (default 1: all but one keep serving)' })
  timeout = Option.String('--timeout', '900', { description: 'Seconds to wait for every replica to run: a last resort, since a replica that fails or turns unhealthy ends the ship at once' })

  /**
   * The last lines of a replica's console, read from its node as its owner (the console may hold
   * the owner's secrets: only a signed request gets it): the node this command talks to, or the
   * configured host that is that node.
   */
  async consoleTailOf(config: import('../../kit/index.js').UserConfig, signer: import('../../../core/auth/sign.js').Signer, node: string, id: string, lines = 20): Promise<string> {
    const { consoleTail } = await loadInstanceViews()
    const urls = [this.nodeUrl(config), ...config.hosts.filter((h) => /^https?:\/\//.test(h)).map((h) => h.replace(/\/$/, ''))]
    for (const url of [...new Set(urls)]) {
      const client = await this.client({ url, signer })
      const here = await client.get<{ address: string }>('/v1/state/info').then((i) => i.address, () => undefined)
      if (here !== node) continue
      const { consoleExcerpt } = await import('../lib/rollout.js')
      return consoleExcerpt(await consoleTail(client, id, 16384), lines) || '(the console is empty)'
    }
    return `(its node ${node} is not one this CLI talks to; read it there with \`form manage logs ${id} --node <its API URL>\`)`
  }

  async run() {
    const { FormError } = await import('../../../core/errors.js')
    const { readBuild } = await import('../lib/follow.js')
    const { planShip, replicaProgress, shortfallNote } = await import('../lib/ship.js')
    const { planRollout, rolloutFailure, runRollout, STRATEGIES, DEFAULT_MAX_UNAVAILABLE } = await import('../lib/rollout.js')
    type Before = import('../lib/rollout.js').Before
    type Row = import('../lib/rollout.js').RolloutRow
    const { followInstances, instanceViews, listRecords, readLiveness, writeDesiredRecord } = await loadInstanceViews()

    const { config, build, owner } = await this.target()
    const shipDefaults = config.ship ?? {}
    const replicas = this.replicas === undefined ? (shipDefaults.replicas ?? REPLICAS.default) : Number(this.replicas)
    if (!Number.isInteger(replicas) || replicas < REPLICAS.min || replicas > REPLICAS.max) throw new FormError('USAGE', `--replicas must be a whole number from ${REPLICAS.min} to ${REPLICAS.max} (got "${this.replicas}")`)
    const failoverS = this.failoverAfter === undefined ? (shipDefaults.failoverAfterS ?? FAILOVER_S.default) : Number(this.failoverAfter)
    if (!Number.isInteger(failoverS) || failoverS < FAILOVER_S.min || failoverS > FAILOVER_S.max) throw new FormError('USAGE', `--failover-after must be a whole number of seconds from ${FAILOVER_S.min} to ${FAILOVER_S.max} (got "${this.failoverAfter}")`)
    const strategy = this.strategy as (typeof STRATEGIES)[number]
    if (!STRATEGIES.includes(strategy)) throw new FormError('USAGE', `--strategy must be one of ${STRATEGIES.join(', ')} (got "${this.strategy}")`)
    const maxUnavailable = this.maxUnavailable === undefined ? DEFAULT_MAX_UNAVAILABLE : Number(this.maxUnavailable)
    if (!Number.isInteger(maxUnavailable) || maxUnavailable < 1) throw new FormError('USAGE', `--max-unavailable must be a whole number of at least 1 (got "${this.maxUnavailable}")`)
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
    const existing = new Map(instanceViews(instances, liveness.seen, owner, liveness.now, { nodes, self: liveness.self }).map((v) => [v.id, v]))
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
    const live = plan.writes.filter((w) => w.action !== 'delete')
    // a replica its host does not report serving (or that no host reports) is down already: it counts against --max-unavailable
    const before: Before = new Map(
      plan.writes.map((w) => {
        const v = existing.get(w.id)
        return [w.id, v?.desired ? { image: v.desired.image, state: v.desired.state, down: !v.observed || replicaProgress(v.observed) !== 'ready' } : undefined]
      }),
    )
    const steps = planRollout(plan.writes, before, { strategy, maxUnavailable })
    const rolling = steps.some((s) => s.replaces)
    if (this.detach && rolling) {
      throw new FormError('USAGE', `this ship replaces the image of ${steps.filter((s) => s.replaces).flatMap((s) => s.ids).join(', ')}: a rolling update is driven by this command and cannot be detached`, {
        hint: 'follow it (drop --detach), or replace them all at once with --strategy immediate --detach',
      })
    }
    const write = (w: (typeof plan.writes)[number]) => writeDesiredRecord(client, signer, w.id, w.desired, existing.get(w.id)?.record?.t)
    const short = (a: string) => `${a.slice(0, 10)}…`
    const notes = [
      ...[shortfallNote(plan, replicas)].filter((n) => n !== undefined),
      ...plan.writes.filter((w) => w.action === 'delete').map((w) => `${w.id}: deleted (above --replicas)`),
    ]
    for (const n of notes) this.context.stderr.write(`${n}\n`)

    const rows: Row[] = live.map((w) => ({ id: w.id, node: w.desired.node, state: 'requested', ip: null }))
    const rollout = () => steps.map((s, i) => ({ step: i + 1, replicas: s.ids, replaces: s.replaces }))
    const summary = () => ({ buildId: build, image: status.image, strategy, ...(rolling ? { maxUnavailable } : {}), replicas: rows, steps: rollout(), scheduledMs: Math.round(scheduledMs) })
    if (this.detach) {
      for (const w of plan.writes) await write(w)
      this.print(summary(), () => [...rows.map((r) => `${r.id}: requested on node ${r.node}`), `follow them with: form manage list`].join('\n'))
      return 0
    }

    // a replica that keeps its image counts as soon as its host reports it running
    const unchanged = new Set(plan.writes.filter((w) => w.action === 'update' && existing.get(w.id)?.desired?.image === w.desired.image).map((w) => w.id))
    const deadline = Date.now() + timeoutS * 1000
    const err = this.context.stderr
    const quiet = this.json
    const written = new Set<string>()
    const line = (r: Row) => `${r.id} on ${short(r.node)}: ${written.has(r.id) ? `${r.state}${r.health ? `, ${r.health.state}` : ''}${r.ip ? ` at ${r.ip}` : ''}${r.health?.reason ? `: ${r.health.reason}` : ''}` : 'waiting its turn (the old image serves)'}`
    const shown = new Map<string, string>()
    const onInterrupt = () => {
      err.write(`\nStopped following; the nodes go on${rolling ? ' with the steps written so far (the rest of the rollout is not written)' : ''}. See them with: form manage list\n`)
      process.exit(0)
    }
    process.once('SIGINT', onInterrupt)
    // the node tells of every change to the owner's instances as it happens; nothing is re-read on a timer
    const following = new AbortController()
    const lost = new AbortController()
    const feed = { views: undefined as import('../../instances/index.js').InstanceView[] | undefined, version: 0, read: -1, wake: undefined as (() => void) | undefined, error: undefined as unknown }
    const follower = (async () => {
      for await (const views of followInstances(client, owner, following.signal)) {
        feed.views = views
        feed.version++
        feed.wake?.()
      }
    })().catch((error: unknown) => {
      // the node could not be followed at all: the rollout stops, and the ship fails with why
      feed.error = error
      lost.abort()
      feed.wake?.()
    })
    const list = async () => {
      if (feed.error) throw feed.error
      feed.read = feed.version
      return feed.views ?? []
    }
    const changed = (ms: number) =>
      new Promise<void>((resolve) => {
        if (feed.version !== feed.read || feed.error) return resolve()
        const timer = setTimeout(done, ms)
        function done() {
          clearTimeout(timer)
          feed.wake = undefined
          resolve()
        }
        feed.wake = done
      })
    let outcome: Awaited<ReturnType<typeof runRollout>>
    try {
      outcome = await runRollout({
        steps,
        writes: plan.writes,
        image: status.image,
        rows,
        before: new Map(plan.writes.map((w) => [w.id, existing.get(w.id)?.observed])),
        unchanged,
        write,
        list,
        changed,
        signal: lost.signal,
        deadline,
        onStep: (step, i) => {
          for (const id of step.ids) written.add(id)
          if (!quiet && rolling) {
            const others = rows.filter((r) => !step.ids.includes(r.id))
            err.write(step.replaces ? `step ${i + 1}/${steps.length}: replacing ${step.ids.join(', ')}${others.length ? ` while ${others.map((r) => r.id).join(', ')} serve${others.length === 1 ? 's' : ''}` : ''}\n` : `step ${i + 1}/${steps.length}: ${step.ids.join(', ')} at once (new, deleted or unchanged replicas)\n`)
          }
        },
        onChange: () => {
          if (quiet) return
          for (const r of rows) {
            const text = line(r)
            if (shown.get(r.id) !== text) err.write(`  ${text}\n`)
            shown.set(r.id, text)
          }
        },
      })
    } finally {
      process.off('SIGINT', onInterrupt)
      following.abort()
      await follower
    }
    if (feed.error) throw feed.error
    const result = { ...summary(), steps: rollout().map((s, i) => ({ ...s, ...(outcome.steps[i] ? { ms: outcome.steps[i].ms, result: outcome.steps[i].result } : { result: 'not started' }) })), readyMs: Math.round(performance.now() - t0) }
    if (outcome.stopped) {
      if (this.json) this.context.stdout.write(JSON.stringify(result, null, 2) + '\n')
      // a replica whose VM died (during boot, say): its console tells why; only its owner may read it
      const tails = new Map<string, string>()
      for (const r of outcome.stopped.rows.filter((x) => x.state === 'failed')) {
        tails.set(r.id, await this.consoleTailOf(config, signer, r.node, r.id).catch((e: Error) => `(its console could not be read: ${e.message})`))
      }
      throw rolloutFailure(outcome.stopped, steps, rows, tails)
    }
    this.print(result, () => [`${rows.length} replica${rows.length === 1 ? '' : 's'} of build ${build} running:`, ...rows.map((r) => `  ${r.id}  ${r.ip}  (node ${r.node}${r.health ? `, ${r.health.state}: ${r.health.checks} check${r.health.checks === 1 ? '' : 's'} pass` : ''})`), `ssh to one: form manage ssh ${rows[0].id}`].join('\n'))
    return 0
  }
}
