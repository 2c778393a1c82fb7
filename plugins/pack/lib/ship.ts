import { FormError } from '../../../core/errors.js'
import { candidatesFrom, desiredEntries, hostsOf, MAX_CANDIDATES, place, type DesiredInstance, type HealthReport, type Liveness, type PlacementResult } from '../../instances/index.js'
import type { StateRecord } from '../../state/index.js'

/**
 * What `form pack ship` writes: the desired records of a build's replicas. Planning is a pure
 * function of state (nodes, every instance record, the build) so it can be tested and repeated:
 * shipping again with the same inputs writes the same placement.
 */

export interface ShipInput {
  owner: string
  build: string
  /** the Formfile's NAME: replicas are `<name>-1`, `<name>-2`, ... */
  name: string
  image: string
  resources: { vcpus: number; memoryMb: number; diskGb: number; gpu?: { model: string; count: number } }
  replicas: number
  failoverMs: number
  /** nodes that already hold the image (its builder) */
  imageHolders: string[]
  nodes: StateRecord[]
  /** every record of collection `instances` (all owners: their instances use the nodes' capacity) */
  instances: StateRecord[]
  /** when the node computing this last heard from each node, by its clock (see Liveness) */
  seen: Liveness
  /** that node's clock */
  now: number
}

export interface ShipPlan {
  /** the records to write, in replica order */
  writes: { id: string; desired: DesiredInstance; action: 'create' | 'update' | 'delete' }[]
  placement: PlacementResult
  /** replicas that keep the node they had */
  kept: number
}

export function planShip(input: ShipInput): ShipPlan {
  if (!Number.isInteger(input.replicas) || input.replicas < 1) throw new FormError('USAGE', `the replica count must be a whole number of at least 1, not ${input.replicas}`)
  const entries = desiredEntries(input.instances)
  const hosts = hostsOf(entries, input.seen, input.now, { nodes: input.nodes })
  const mine = entries
    .filter((e) => e.owner === input.owner && e.desired.buildId === input.build && e.desired.state !== 'deleted')
    .sort((a, b) => replicaIndex(a.id, input.name) - replicaIndex(b.id, input.name) || a.id.localeCompare(b.id))
  // this build's own replicas do not compete with it for room: they are being replaced in place
  const others = entries.filter((e) => !(e.owner === input.owner && e.desired.buildId === input.build))
  const nodes = candidatesFrom(input.nodes, input.seen, others, hosts, input.image, input.imageHolders)
  const request = { seed: input.build, resources: input.resources, gpu: input.resources.gpu, image: input.image }
  const opts = { now: input.now, heartbeatTimeoutMs: input.failoverMs }
  // every fit node, best first: the fallbacks each replica may move to
  const ranking = place({ ...request, replicas: nodes.length }, nodes, opts).ranked.slice(0, MAX_CANDIDATES)

  const keep = mine.slice(0, input.replicas)
  const alive = new Set(ranking)
  const keptHosts = keep.map((e) => hosts.get(`${e.owner}/${e.id}`)!).filter((n) => alive.has(n))
  const placement = place({ ...request, replicas: input.replicas - keep.length, exclude: keptHosts }, nodes, opts)
  if (keep.length === 0 && placement.nodes.length === 0) {
    const why = placement.skipped.map((s) => `${s.node}: ${s.reason}`).join('; ')
    throw new FormError('SHIP_NO_NODES', `no node can take a replica of build ${input.build}${why ? ` (${why})` : ' (no member node with capacity has been heard from)'}`, {
      hint: 'check the nodes with `form state list nodes` (capacity and used); lower VCPU/MEM/DISK in the Formfile, let a node offer more (its operator config\'s [node.resources], else the host minus [node.reserve]), delete instances you no longer need (`form manage delete`), or wait for nodes to join',
    })
  }
  const base = {
    buildId: input.build,
    image: input.image,
    state: 'running' as const,
    vcpus: input.resources.vcpus,
    memoryMb: input.resources.memoryMb,
    diskGb: input.resources.diskGb,
    candidates: ranking,
    failoverMs: input.failoverMs,
  }
  const writes: ShipPlan['writes'] = []
  for (const e of keep) writes.push({ id: e.id, action: 'update', desired: { ...base, name: e.desired.name, node: e.desired.node } })
  const used = new Set(mine.map((e) => e.id))
  let index = 0
  for (const node of placement.nodes) {
    let id: string
    do id = `${input.name}-${++index}`
    while (used.has(id))
    used.add(id)
    writes.push({ id, action: 'create', desired: { ...base, name: id, node } })
  }
  for (const e of mine.slice(input.replicas)) writes.push({ id: e.id, action: 'delete', desired: { ...e.desired, state: 'deleted' } })
  return { writes, placement, kept: keep.length }
}

/**
 * Why a ship runs fewer replicas than asked, or undefined when it runs them all. When no node was
 * skipped, every live node took one: the rest lack a node, not room (a one-node network says so).
 */
export function shortfallNote(plan: ShipPlan, replicas: number): string | undefined {
  const placed = plan.writes.filter((w) => w.action !== 'delete').length
  if (!plan.placement.unplaced || placed >= replicas) return undefined
  const { skipped } = plan.placement
  const why = skipped.length
    ? `${skipped.map((s) => `${s.node.slice(0, 10)}… ${s.reason}`).join('; ')} (a node offers its [node.resources], else its host minus [node.reserve])`
    : `each replica runs on a node of its own, and the network has no other live node`
  return `only ${placed} of ${replicas} replicas could be placed: ${why}`
}

/** `web-3` → 3 (replicas sort by their number); other ids sort last. */
function replicaIndex(id: string, name: string): number {
  const m = id.startsWith(`${name}-`) ? /^\d+$/.exec(id.slice(name.length + 1)) : null
  return m ? Number(m[0]) : Number.MAX_SAFE_INTEGER
}

/**
 * Where a shipped replica stands, from what its node last reported: `ready` once it runs and, when
 * its image has health checks, passes them; `unhealthy` (a failed ship: the deploy does not serve)
 * and `failed` end the wait; anything else is still on its way.
 */
export function replicaProgress(r: { state: string; health?: HealthReport }): 'ready' | 'waiting' | 'unhealthy' | 'failed' {
  if (r.state === 'failed') return 'failed'
  if (r.health?.state === 'unhealthy') return 'unhealthy'
  return r.state === 'running' && (!r.health || r.health.state === 'healthy') ? 'ready' : 'waiting'
}
