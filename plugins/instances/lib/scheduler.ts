import type { StateRecord } from '../../state/index.js'
import type { Resources } from './records.js'
import { roomsOf, rendezvous, shortOf, usageOn, type DesiredEntry, type Liveness } from './hosts.js'

export interface GpuNeed {
  model: string
  count: number
}

export interface NodeCandidate {
  id: string
  capacity: Resources & { gpus?: Record<string, number> }
  /** what the instances already assigned to it use */
  used: Resources & { gpus?: Record<string, number> }
  /** when the node computing this last received a new record from it, by its own clock (see Liveness) */
  heartbeat: number
  /** image digests it already holds */
  images?: string[]
}

export interface PlacementRequest {
  /** makes the spread differ between builds while staying deterministic (e.g. the build id) */
  seed: string
  replicas: number
  resources: Resources
  gpu?: GpuNeed
  image?: string
  /** nodes that already host a replica of this build: they get no second one */
  exclude?: string[]
}

export interface PlacementResult {
  nodes: string[]
  /** why each node that was not chosen was skipped (only unfit ones) */
  skipped: { node: string; reason: string }[]
  /** replicas asked for that no node could take */
  unplaced: number
  /** every node that could take a replica, best first: the chosen ones, then the fallbacks */
  ranked: string[]
}

export interface SchedulerOptions {
  now: number
  /** a node whose last heartbeat is older than this gets nothing */
  heartbeatTimeoutMs: number
}

function unfit(node: NodeCandidate, req: PlacementRequest, opts: SchedulerOptions): string | undefined {
  if (opts.now - node.heartbeat > opts.heartbeatTimeoutMs) return `no heartbeat for ${Math.round((opts.now - node.heartbeat) / 1000)}s`
  const gpus = node.capacity.gpus && Object.fromEntries(Object.entries(node.capacity.gpus).map(([m, n]) => [m, n - (node.used.gpus?.[m] ?? 0)]))
  const free = { vcpus: node.capacity.vcpus - node.used.vcpus, memoryMb: node.capacity.memoryMb - node.used.memoryMb, diskGb: node.capacity.diskGb - node.used.diskGb, gpus }
  return shortOf(free, { ...req.resources, gpu: req.gpu })
}

/**
 * Chooses distinct nodes for the replicas. Live nodes with room are ranked: first those that already
 * hold the image (no transfer), then by rendezvous hash of (seed, node). The same inputs always give
 * the same answer, on every node that computes it.
 */
export function place(req: PlacementRequest, nodes: NodeCandidate[], opts: SchedulerOptions): PlacementResult {
  const excluded = new Set(req.exclude ?? [])
  const skipped: PlacementResult['skipped'] = []
  const fit: NodeCandidate[] = []
  for (const node of nodes) {
    if (excluded.has(node.id)) continue
    const reason = unfit(node, req, opts)
    if (reason) skipped.push({ node: node.id, reason })
    else fit.push(node)
  }
  const hasImage = (n: NodeCandidate) => (req.image !== undefined && (n.images ?? []).includes(req.image) ? 0 : 1)
  const ranked = fit
    .map((n) => ({ n, image: hasImage(n), score: rendezvous(req.seed, n.id) }))
    .sort((a, b) => a.image - b.image || (a.score < b.score ? -1 : a.score > b.score ? 1 : 0))
  const chosen = ranked.slice(0, Math.max(0, req.replicas)).map((x) => x.n.id)
  skipped.sort((a, b) => (a.node < b.node ? -1 : 1))
  return { nodes: chosen, skipped, unplaced: Math.max(0, req.replicas - chosen.length), ranked: ranked.map((x) => x.n.id) }
}

/** The nodes as the scheduler sees them: offered capacity, what their instances use, heartbeat. */
export function candidatesFrom(nodes: StateRecord[], seen: Liveness, entries: DesiredEntry[], hosts: Map<string, string>, image: string, imageHolders: string[]): NodeCandidate[] {
  // room and use are counted as the nodes count them at failover (one rule: roomsOf and usageOn)
  const used = usageOn(entries, hosts)
  const out: NodeCandidate[] = []
  for (const room of roomsOf(nodes)) {
    // a node the reading node has not heard from (or that is no member: it has no liveness) gets nothing
    const heartbeat = seen.get(room.id)
    if (heartbeat === undefined) continue
    const images = new Set(imageHolders.includes(room.id) ? [image] : [])
    for (const e of entries) if (e.desired.state !== 'deleted' && hosts.get(`${e.owner}/${e.id}`) === room.id) images.add(e.desired.image)
    out.push({ id: room.id, capacity: room.capacity, used: used.get(room.id) ?? { vcpus: 0, memoryMb: 0, diskGb: 0 }, heartbeat, images: [...images] })
  }
  return out
}
