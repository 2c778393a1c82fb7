import { FormError } from '../../../core/errors.js'
import type { DesiredInstance, HealthReport, ObservedInstance } from '../../instances/index.js'
import type { ShipPlan } from './ship.js'
import { replicaProgress } from './ship.js'

/**
 * How `form pack ship` applies its plan. Replicas that change image are replaced a few at a time
 * (`rolling`): the rest keep serving the old image until each new one runs and passes its checks,
 * and the first that fails or turns unhealthy stops the rollout there. New replicas, deletions and
 * replicas whose image does not change go first, at once: nothing serving is taken away by them, and
 * a new image that cannot boot fails there before any old replica is touched.
 */

export type Strategy = 'rolling' | 'immediate'
export const STRATEGIES: Strategy[] = ['rolling', 'immediate']

export interface RolloutStep {
  /** the replicas written in this step (deletions included), in replica order */
  ids: string[]
  /** true for a batch that replaces running replicas' image */
  replaces: boolean
}

type Write = ShipPlan['writes'][number]

/**
 * What the replicas were before the ship: their desired image and state, and `down` when their node
 * did not report them serving (running, and healthy when checked): such a replica already counts
 * against --max-unavailable.
 */
export type Before = Map<string, { image: string; state: DesiredInstance['state']; down?: boolean } | undefined>

/** The default --max-unavailable: one replica at a time (with one replica, that one). */
export const DEFAULT_MAX_UNAVAILABLE = 1

export function planRollout(writes: Write[], before: Before, opts: { strategy: Strategy; maxUnavailable: number }): RolloutStep[] {
  if (!Number.isInteger(opts.maxUnavailable) || opts.maxUnavailable < 1) throw new FormError('USAGE', `--max-unavailable must be a whole number of at least 1 (got "${opts.maxUnavailable}")`)
  // only a replica that runs and gets another image goes down for the ship
  const replaced = (w: Write) => {
    const b = before.get(w.id)
    return w.action === 'update' && b !== undefined && b.state === 'running' && b.image !== w.desired.image
  }
  const replacing = opts.strategy === 'rolling' ? writes.filter(replaced).map((w) => w.id) : []
  const first = writes.filter((w) => !replacing.includes(w.id)).map((w) => w.id)
  const steps: RolloutStep[] = first.length ? [{ ids: first, replaces: false }] : []
  // a replica already down serves nothing: it counts against the budget until it is replaced, so the
  // down ones go in the first batch (taking them costs nothing), with only as many serving ones as
  // the budget leaves beside them
  const down = replacing.filter((id) => before.get(id)?.down)
  const up = replacing.filter((id) => !before.get(id)?.down)
  const beside = Math.max(0, opts.maxUnavailable - down.length)
  if (down.length) steps.push({ ids: [...down, ...up.slice(0, beside)], replaces: true })
  for (let i = down.length ? beside : 0; i < up.length; i += opts.maxUnavailable) steps.push({ ids: up.slice(i, i + opts.maxUnavailable), replaces: true })
  return steps
}

/** One replica as the ship follows it. */
export interface RolloutRow {
  id: string
  node: string
  state: string
  ip: string | null
  reason?: string
  health?: HealthReport
  timings?: { imageMs?: number; diskMs?: number; bootMs?: number }
}

export interface RolloutView {
  id: string
  host?: string
  desired?: DesiredInstance
  observed?: ObservedInstance
}

/**
 * Whether `o` reports on what this ship asked for, not on what ran before it: a node that says
 * which image it runs must run the shipped one; otherwise (or while no disk exists yet, e.g. the
 * image could not be fetched) any report written after the one seen before the write counts.
 */
export function reportsOn(o: ObservedInstance | undefined, image: string, before: ObservedInstance | undefined, unchanged: boolean): boolean {
  if (!o) return false
  if (o.image !== undefined) return o.image === image
  return unchanged || o.updatedAt !== before?.updatedAt
}

/** Updates `row` from the replica's view: what its node reports about this ship, else `requested`. */
export function updateRow(row: RolloutRow, v: RolloutView | undefined, image: string, before: ObservedInstance | undefined, unchanged: boolean): void {
  const o = v?.observed
  const fresh = reportsOn(o, image, before, unchanged)
  row.node = v?.host ?? row.node
  row.state = fresh ? o!.state : 'requested'
  row.ip = fresh && o!.state === 'running' ? (o!.ip ?? null) : null
  row.timings = fresh ? o!.timings : undefined
  row.reason = fresh && o!.state === 'failed' ? (o!.reason ?? 'no reason given') : undefined
  row.health = fresh && (o!.state === 'running' || o!.state === 'booting') ? o!.health : undefined
}

export interface StepReport {
  step: number
  ids: string[]
  replaces: boolean
  /** from this step's writes to all its replicas ready, or to the failure */
  ms: number
  result: 'ready' | 'failed' | 'unhealthy' | 'timeout'
}

export interface RolloutOptions {
  steps: RolloutStep[]
  writes: Write[]
  image: string
  rows: RolloutRow[]
  /** observed records as read before the ship (the baseline of `reportsOn` for step 0) */
  before: Map<string, ObservedInstance | undefined>
  /** replicas whose image the ship does not change (their running report counts at once) */
  unchanged: Set<string>
  write(w: Write): Promise<void>
  list(): Promise<RolloutView[]>
  /**
   * resolves when what list() returns may have changed since it was last called, or after `ms`
   * (for the deadline); without it, list() is read again every `intervalMs`
   */
  changed?(ms: number): Promise<void>
  deadline: number
  intervalMs?: number
  /** called with each step before it is written */
  onStep?(step: RolloutStep, index: number): void
  /** called after every read that changed a row */
  onChange?(rows: RolloutRow[]): void
  /** stops following (Ctrl-C): the step in progress is left to the nodes */
  signal?: AbortSignal
}

export interface RolloutOutcome {
  steps: StepReport[]
  /** the step that stopped the rollout, with the replicas that broke it */
  stopped?: { index: number; result: StepReport['result']; rows: RolloutRow[] }
  /** replicas never written because the rollout stopped */
  notWritten: string[]
}

/**
 * Writes each step and waits for its replicas to be ready (replicaProgress) before the next. A
 * replica that fails or turns unhealthy ends the step at once (the node already said why); a step
 * that runs past the deadline ends it too. Later steps are not written.
 */
export async function runRollout(o: RolloutOptions): Promise<RolloutOutcome> {
  const byId = new Map(o.writes.map((w) => [w.id, w]))
  const rowOf = new Map(o.rows.map((r) => [r.id, r]))
  const baseline = new Map(o.before)
  const reports: StepReport[] = []
  let last = ''
  for (const [index, step] of o.steps.entries()) {
    o.onStep?.(step, index)
    if (index > 0) {
      // what the nodes report from here on is about this step's writes
      const views = await o.list().catch(() => [])
      for (const v of views) if (step.ids.includes(v.id)) baseline.set(v.id, v.observed)
    }
    const t0 = performance.now()
    for (const id of step.ids) await o.write(byId.get(id)!)
    const watched = step.ids.map((id) => rowOf.get(id)).filter((r): r is RolloutRow => r !== undefined)
    let result: StepReport['result'] | undefined
    for (;;) {
      // a failed read (the node busy, say) changes nothing; the next one will
      const views = await o.list().catch(() => undefined)
      if (views) {
        const now = new Map(views.map((v) => [v.id, v]))
        for (const r of o.rows) updateRow(r, now.get(r.id), o.image, baseline.get(r.id), o.unchanged.has(r.id))
        const text = JSON.stringify(o.rows)
        if (text !== last) o.onChange?.(o.rows)
        last = text
      }
      const progress = watched.map(replicaProgress)
      if (progress.every((p) => p === 'ready')) result = 'ready'
      else if (progress.includes('failed')) result = 'failed'
      else if (progress.includes('unhealthy')) result = 'unhealthy'
      else if (Date.now() > o.deadline) result = 'timeout'
      if (result || o.signal?.aborted) break
      await (o.changed ? o.changed(Math.max(0, Math.min(5_000, o.deadline - Date.now() + 10))) : new Promise((res) => setTimeout(res, o.intervalMs ?? 700)))
    }
    if (!result) break
    reports.push({ step: index, ids: step.ids, replaces: step.replaces, ms: Math.round(performance.now() - t0), result })
    if (result !== 'ready') {
      const broken = watched.filter((r) => replicaProgress(r) !== 'ready')
      return { steps: reports, stopped: { index, result, rows: broken }, notWritten: o.steps.slice(index + 1).flatMap((s) => s.ids) }
    }
  }
  return { steps: reports, notWritten: [] }
}

/**
 * The error of a stopped ship: which replicas broke it and why (a failed one with the end of its
 * console, from `tails`), and, in a rolling update, which replicas still run the old image.
 */
export function rolloutFailure(stopped: NonNullable<RolloutOutcome['stopped']>, steps: RolloutStep[], rows: RolloutRow[], tails: Map<string, string> = new Map()): FormError {
  const { result, index } = stopped
  // the replicas that broke the step come first (and name the hint): in a step of several, the
  // others may only still be booting
  const broken = [...stopped.rows.filter((r) => replicaProgress(r) === result), ...stopped.rows.filter((r) => replicaProgress(r) !== result)]
  const code = result === 'failed' ? 'SHIP_REPLICA_FAILED' : result === 'unhealthy' ? 'SHIP_REPLICA_UNHEALTHY' : 'SHIP_TIMEOUT'
  const rolling = steps.some((s) => s.replaces)
  const short = (a: string) => `${a.slice(0, 10)}…`
  const why = (r: RolloutRow) => `${r.id} on node ${short(r.node)} (${r.state}${r.health ? `, ${r.health.state}` : ''}${r.reason ? `: ${r.reason.split('\n')[0]}` : r.health?.reason ? `: ${r.health.reason}` : ''})`
  const untouched = steps.slice(index + 1).filter((s) => s.replaces).flatMap((s) => s.ids)
  const runs = (ids: string[]) => `${ids.join(', ')} still run${ids.length === 1 ? 's' : ''} the old image, untouched`
  const stepNote = !rolling ? '' : steps[index].replaces
    ? ` The rollout stopped at step ${index + 1} of ${steps.length}: ${untouched.length ? runs(untouched) : 'no replica is left on the old image'}.`
    : ` The rollout stopped before replacing any running replica: ${runs(untouched)}.`
  const console = broken.filter((r) => tails.has(r.id)).map((r) => `\nlast lines of ${r.id}'s console:\n${tails.get(r.id)}`).join('')
  const first = broken[0]?.id ?? '<instance>'
  return new FormError(code, `${broken.length} of ${rows.length} replicas ${broken.length === 1 ? 'is' : 'are'} not running${rows.some((r) => r.health) ? ' and healthy' : ''}: ${broken.map(why).join(', ')}.${stepNote}${console}`, {
    hint: rolling
      ? `fix the image and ship again (\`form pack build && form pack ship\`): the rollout goes on from the replicas not yet on the new image; to roll back, build and ship the previous Formfile the same way. See \`form manage list\` and \`form manage logs ${first}\``
      : code === 'SHIP_REPLICA_FAILED'
        ? `see \`form manage logs ${first}\`; the node retries on its own`
        : code === 'SHIP_REPLICA_UNHEALTHY'
          ? `its node restarts it with backoff; see \`form manage list\` and \`form manage logs ${first}\``
          : 'the nodes keep working on it; check with `form manage list`',
    // a replica that failed or turned unhealthy broke the deploy; one still on its way only ran out of time
    exitCode: code === 'SHIP_TIMEOUT' ? 4 : 1,
  })
}

/**
 * The part of a failed replica's console worth showing: its last `lines` lines, but when the guest
 * kernel panicked, the lines up to the panic (what the guest said last, and why it panicked)
 * instead of the stack trace after it.
 */
export function consoleExcerpt(text: string, lines = 20): string {
  const all = text.split('\n')
  const panic = all.findLastIndex((l) => /Kernel panic - not syncing/.test(l))
  if (panic === -1 || panic >= all.length - lines) return all.slice(-lines).join('\n')
  return [...all.slice(Math.max(0, panic + 1 - lines), panic + 1), `(${all.length - panic - 1} more lines: the kernel's stack trace)`].join('\n')
}
