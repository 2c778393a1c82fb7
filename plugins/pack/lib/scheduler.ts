import { createHash } from 'node:crypto'

export interface Resources {
  vcpus: number
  memoryMb: number
  diskGb: number
}

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
  const free = (k: keyof Resources) => node.capacity[k] - node.used[k]
  const r = req.resources
  if (free('vcpus') < r.vcpus) return `needs ${r.vcpus} vCPU, ${free('vcpus')} free`
  if (free('memoryMb') < r.memoryMb) return `needs ${r.memoryMb} MB memory, ${free('memoryMb')} free`
  if (free('diskGb') < r.diskGb) return `needs ${r.diskGb} GB disk, ${free('diskGb')} free`
  if (req.gpu) {
    const have = (node.capacity.gpus?.[req.gpu.model] ?? 0) - (node.used.gpus?.[req.gpu.model] ?? 0)
    if (have < req.gpu.count) return `needs ${req.gpu.count} × ${req.gpu.model} GPU, ${have} free`
  }
  return undefined
}

/** Rendezvous hashing: each (seed, node) pair gets a stable score, so builds spread over nodes. */
function score(seed: string, node: string): string {
  return createHash('sha256').update(seed).update('\0').update(node).digest('hex')
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
    .map((n) => ({ n, image: hasImage(n), score: score(req.seed, n.id) }))
    .sort((a, b) => a.image - b.image || (a.score < b.score ? -1 : a.score > b.score ? 1 : 0))
  const chosen = ranked.slice(0, Math.max(0, req.replicas)).map((x) => x.n.id)
  skipped.sort((a, b) => (a.node < b.node ? -1 : 1))
  return { nodes: chosen, skipped, unplaced: Math.max(0, req.replicas - chosen.length), ranked: ranked.map((x) => x.n.id) }
}
