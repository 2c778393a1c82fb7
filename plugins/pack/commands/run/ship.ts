import type { Signer } from '../../../../core/auth/sign.js'
import { FormError } from '../../../../core/errors.js'
import { FAILOVER_S, loadInstanceViews, REPLICAS, wholeWithin, type InstanceView } from '../../../instances/index.js'
import type { UserConfig } from '../../../kit/index.js'
import { readBuild } from '../../lib/follow.js'
import { consoleExcerpt, planRollout, rolloutFailure, runRollout, STRATEGIES, DEFAULT_MAX_UNAVAILABLE, type Before, type RolloutRow } from '../../lib/rollout.js'
import { planShip, replicaProgress, shortfallNote } from '../../lib/ship.js'
import type { PackShipCommand } from '../ship.js'
import { target } from './status.js'

/**
 * The last lines of a replica's console, read from its node as its owner (the console may hold
 * the owner's secrets: only a signed request gets it): the node this command talks to, or the
 * configured host that is that node.
 */
async function consoleTailOf(cmd: PackShipCommand, config: UserConfig, signer: Signer, node: string, id: string, lines = 20): Promise<string> {
  const { consoleTail } = await loadInstanceViews()
  const urls = [cmd.nodeUrl(config), ...config.hosts.filter((h) => /^https?:\/\//.test(h)).map((h) => h.replace(/\/$/, ''))]
  for (const url of [...new Set(urls)]) {
    const client = await cmd.client({ url, signer })
    const here = await client.get<{ address: string }>('/v1/state/info').then((i) => i.address, () => undefined)
    if (here !== node) continue
    return consoleExcerpt(await consoleTail(client, id, 16384), lines) || '(the console is empty)'
  }
  return `(its node ${node} is not one this CLI talks to; read it there with \`form manage logs ${id} --node <its API URL>\`)`
}

export async function packShip(cmd: PackShipCommand) {
  type Row = RolloutRow
  const { followInstances, instanceViews, listRecords, readLiveness, writeDesiredRecord } = await loadInstanceViews()

  const { config, build, owner } = await target(cmd)
  const shipDefaults = config.ship ?? {}
  const replicas = cmd.replicas === undefined ? (shipDefaults.replicas ?? REPLICAS.default) : Number(cmd.replicas)
  if (!wholeWithin(REPLICAS)(replicas)) throw new FormError('USAGE', `--replicas must be a whole number from ${REPLICAS.min} to ${REPLICAS.max} (got "${cmd.replicas}")`)
  const failoverS = cmd.failoverAfter === undefined ? (shipDefaults.failoverAfterS ?? FAILOVER_S.default) : Number(cmd.failoverAfter)
  if (!wholeWithin(FAILOVER_S)(failoverS)) throw new FormError('USAGE', `--failover-after must be a whole number of seconds from ${FAILOVER_S.min} to ${FAILOVER_S.max} (got "${cmd.failoverAfter}")`)
  const strategy = cmd.strategy as (typeof STRATEGIES)[number]
  if (!STRATEGIES.includes(strategy)) throw new FormError('USAGE', `--strategy must be one of ${STRATEGIES.join(', ')} (got "${cmd.strategy}")`)
  const maxUnavailable = cmd.maxUnavailable === undefined ? DEFAULT_MAX_UNAVAILABLE : Number(cmd.maxUnavailable)
  if (!Number.isInteger(maxUnavailable) || maxUnavailable < 1) throw new FormError('USAGE', `--max-unavailable must be a whole number of at least 1 (got "${cmd.maxUnavailable}")`)
  const timeoutS = Number(cmd.timeout)
  if (!(timeoutS > 0)) throw new FormError('USAGE', `--timeout must be a positive number of seconds (got "${cmd.timeout}")`)

  const signer = await cmd.signer()
  const client = await cmd.client({ url: cmd.nodeUrl(config), signer })
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
  if (cmd.detach && rolling) {
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
  for (const n of notes) cmd.context.stderr.write(`${n}\n`)

  const rows: Row[] = live.map((w) => ({ id: w.id, node: w.desired.node, state: 'requested', ip: null }))
  const rollout = () => steps.map((s, i) => ({ step: i + 1, replicas: s.ids, replaces: s.replaces }))
  const summary = () => ({ buildId: build, image: status.image, strategy, ...(rolling ? { maxUnavailable } : {}), replicas: rows, steps: rollout(), scheduledMs: Math.round(scheduledMs) })
  if (cmd.detach) {
    for (const w of plan.writes) await write(w)
    cmd.print(summary(), () => [...rows.map((r) => `${r.id}: requested on node ${r.node}`), `follow them with: form manage list`].join('\n'))
    return 0
  }

  // a replica that keeps its image counts as soon as its host reports it running
  const unchanged = new Set(plan.writes.filter((w) => w.action === 'update' && existing.get(w.id)?.desired?.image === w.desired.image).map((w) => w.id))
  const deadline = Date.now() + timeoutS * 1000
  const err = cmd.context.stderr
  const quiet = cmd.json
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
  const feed = { views: undefined as InstanceView[] | undefined, version: 0, read: -1, wake: undefined as (() => void) | undefined, error: undefined as unknown }
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
    if (cmd.json) cmd.context.stdout.write(JSON.stringify(result, null, 2) + '\n')
    // a replica whose VM died (during boot, say): its console tells why; only its owner may read it
    const tails = new Map<string, string>()
    for (const r of outcome.stopped.rows.filter((x) => x.state === 'failed')) {
      tails.set(r.id, await consoleTailOf(cmd, config, signer, r.node, r.id).catch((e: Error) => `(its console could not be read: ${e.message})`))
    }
    throw rolloutFailure(outcome.stopped, steps, rows, tails)
  }
  cmd.print(result, () => [`${rows.length} replica${rows.length === 1 ? '' : 's'} of build ${build} running:`, ...rows.map((r) => `  ${r.id}  ${r.ip}  (node ${r.node}${r.health ? `, ${r.health.state}: ${r.health.checks} check${r.health.checks === 1 ? '' : 's'} pass` : ''})`), `ssh to one: form manage ssh ${rows[0].id}`].join('\n'))
  return 0
}
