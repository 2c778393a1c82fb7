import { createHash } from 'node:crypto'
import type { StateRecord } from '../../state/index.js'
import { DEFAULT_FAILOVER_MS, parseDesired, parseInstanceKey, type DesiredInstance, type Resources } from './records.js'

/**
 * Which node hosts each instance now. The owner's desired record names a node and, for replicas
 * shipped with fallbacks, candidates; the hosting node, the other nodes and the developer's
 * commands all compute the answer from the same records and heartbeats, so nobody needs to write
 * a reassignment when a node goes away (desired records are the owner's alone to write).
 */


export interface DesiredEntry {
  owner: string
  id: string
  desired: DesiredInstance
}

/** The valid desired records among `records` (of collection `instances`). */
export function desiredEntries(records: StateRecord[]): DesiredEntry[] {
  const out: DesiredEntry[] = []
  for (const r of records) {
    if (r.deleted) continue
    const k = parseInstanceKey(r.key)
    if (k?.kind !== 'desired') continue
    const parsed = parseDesired(r.value)
    if ('desired' in parsed) out.push({ owner: k.owner, id: k.id, desired: parsed.desired })
  }
  return out
}

/**
 * node address → when the node computing this last received a new record from it, by its own clock
 * (the state store's liveness(), or GET /v1/state/liveness for the CLI, with that node's `now`).
 * Only admitted members appear; the heartbeat value a node writes plays no part, so no record can
 * make a node look alive longer than its operations keep arriving.
 */
export type Liveness = Map<string, number>

/** The liveness a node reports over its API ({now, self, seen}), as a map, that node's clock and address. */
export function livenessFrom(reply: { now: number; self?: string; seen: Record<string, number> }): { now: number; self?: string; seen: Liveness } {
  return { now: reply.now, self: reply.self, seen: new Map(Object.entries(reply.seen)) }
}

/** A member node as fallbacks see it: what it offers (its `nodes` record's capacity). */
export interface MemberRoom {
  id: string
  capacity: Resources & { gpus?: Record<string, number> }
}

/** The members that offer capacity, from records of collection `nodes`. */
export function roomsOf(nodes: StateRecord[]): MemberRoom[] {
  const out: MemberRoom[] = []
  for (const r of nodes) {
    const c = (r.value as { capacity?: Partial<Resources> & { gpus?: Record<string, number> } } | undefined)?.capacity
    if (r.deleted || !c) continue
    out.push({ id: r.key, capacity: { vcpus: c.vcpus ?? 0, memoryMb: c.memoryMb ?? 0, diskGb: c.diskGb ?? 0, ...(c.gpus ? { gpus: c.gpus } : {}) } })
  }
  return out
}

/**
 * Why a node with `free` room cannot take `want`, or undefined when it can: the one fitness rule
 * of the network (pack's scheduler at ship time, fallbacks at failover time).
 */
export function shortOf(free: Resources & { gpus?: Record<string, number> }, want: Resources & { gpu?: { model: string; count: number } }): string | undefined {
  if (free.vcpus < want.vcpus) return `needs ${want.vcpus} vCPU, ${free.vcpus} free`
  if (free.memoryMb < want.memoryMb) return `needs ${want.memoryMb} MB memory, ${free.memoryMb} free`
  if (free.diskGb < want.diskGb) return `needs ${want.diskGb} GB disk, ${free.diskGb} free`
  if (want.gpu) {
    const have = free.gpus?.[want.gpu.model] ?? 0
    if (have < want.gpu.count) return `needs ${want.gpu.count} × ${want.gpu.model} GPU, ${have} free`
  }
  return undefined
}

/** Rendezvous hashing: each (seed, node) pair gets a stable score, so builds spread over nodes. */
export function rendezvous(seed: string, node: string): string {
  return createHash('sha256').update(seed).update('\0').update(node).digest('hex')
}

/** What an instance holds on its host: a stopped one keeps only its disk. */
function holds(d: DesiredInstance): Resources {
  return d.state === 'running' ? { vcpus: d.vcpus, memoryMb: d.memoryMb, diskGb: d.diskGb } : { vcpus: 0, memoryMb: 0, diskGb: d.diskGb }
}

/** node → what the instances `hosts` puts on it hold (deleted ones hold nothing). */
export function usageOn(entries: DesiredEntry[], hosts: Map<string, string>): Map<string, Resources> {
  const used = new Map<string, Resources>()
  for (const e of entries) {
    if (e.desired.state === 'deleted') continue
    const node = hosts.get(`${e.owner}/${e.id}`)
    if (node === undefined) continue
    const u = used.get(node) ?? { vcpus: 0, memoryMb: 0, diskGb: 0 }
    const h = holds(e.desired)
    used.set(node, { vcpus: u.vcpus + h.vcpus, memoryMb: u.memoryMb + h.memoryMb, diskGb: u.diskGb + h.diskGb })
  }
  return used
}

/**
 * Whether `self` sees most of the members it knows (itself included) within `windowMs`. An even
 * split goes to the half that holds the lowest address, so a two-node network still fails over one
 * way. Members are those the liveness view holds: a member that never spoke counts as unseen.
 */
export function hasQuorum(self: string, beats: Liveness, now: number, windowMs: number): boolean {
  const known = new Set([...beats.keys(), self])
  const seen = [...known].filter((n) => n === self || now - (beats.get(n) ?? -Infinity) <= windowMs)
  if (seen.length * 2 !== known.size) return seen.length * 2 > known.size
  return seen.includes([...known].sort()[0])
}

export interface HostsOptions {
  /**
   * Records of collection `nodes`: with them, a replica of a gone node may move to any live member
   * with room (shipped candidates first), not only to the candidates fixed at ship time.
   */
  nodes?: StateRecord[]
  /**
   * The node computing this: when it lacks a quorum, it answers as the side it cannot see would
   * (where that side moves a replica, this node does not run it: it is fenced).
   */
  self?: string
}

/**
 * `owner/id` → the node that hosts it now. Replicas of one build (same owner and build id) never
 * share a node; deleted ones hold no node. A replica stays on its chosen node while that node is
 * alive; the replicas of nodes that are gone move, in `owner/id` order, to the first live member
 * with room that hosts no other replica of the build: their shipped candidates first, then every
 * other member by rendezvous hash of the build. Every node computes this from the same records and
 * liveness, so they agree on who runs what without a coordinator; when the chosen node comes back,
 * the replica returns to it. A replica with no such member stays where it was.
 */
export function hostsOf(entries: DesiredEntry[], beats: Liveness, now: number, options: HostsOptions = {}): Map<string, string> {
  const windowOf = (e: DesiredEntry) => e.desired.failoverMs ?? DEFAULT_FAILOVER_MS
  const seen = (node: string, windowMs: number) => now - (beats.get(node) ?? -Infinity) <= windowMs
  const hosts = assign(entries, seen, options.nodes)
  const { self } = options
  if (self === undefined) return hosts
  const fenced = new Map<number, boolean>()
  const lacks = (windowMs: number) => fenced.get(windowMs) ?? fenced.set(windowMs, !hasQuorum(self, beats, now, windowMs)).get(windowMs)!
  if (!entries.some((e) => lacks(windowOf(e)))) return hosts
  // the other side: the members this node cannot see, judged alive there; this node and those it sees are gone
  const there = assign(entries, (node, windowMs) => node !== self && !seen(node, windowMs), options.nodes)
  for (const e of entries) if (lacks(windowOf(e))) hosts.set(`${e.owner}/${e.id}`, there.get(`${e.owner}/${e.id}`)!)
  return hosts
}

function assign(entries: DesiredEntry[], alive: (node: string, windowMs: number) => boolean, nodes: StateRecord[] | undefined): Map<string, string> {
  const hosts = new Map(entries.map((e) => [`${e.owner}/${e.id}`, e.desired.node]))
  const movable = (e: DesiredEntry) => Boolean(e.desired.candidates?.length) && e.desired.state !== 'deleted'
  const movers = entries.filter((e) => movable(e) && !alive(e.desired.node, e.desired.failoverMs ?? DEFAULT_FAILOVER_MS))
  if (!movers.length) return hosts
  const moving = new Set(movers)
  const rooms = nodes ? roomsOf(nodes) : undefined
  const used = usageOn(entries.filter((e) => !moving.has(e)), hosts)
  const builds = new Map<string, Set<string>>()
  const build = (e: DesiredEntry) => `${e.owner}/${e.desired.buildId}`
  const placed = (e: DesiredEntry, node: string) => {
    const set = builds.get(build(e)) ?? new Set<string>()
    builds.set(build(e), set.add(node))
  }
  for (const e of entries) if (movable(e) && !moving.has(e)) placed(e, e.desired.node)
  movers.sort((a, b) => (`${a.owner}/${a.id}` < `${b.owner}/${b.id}` ? -1 : 1))
  for (const e of movers) {
    const windowMs = e.desired.failoverMs ?? DEFAULT_FAILOVER_MS
    const shipped = e.desired.candidates ?? []
    const others = (rooms ?? [])
      .map((r) => r.id)
      .filter((id) => !shipped.includes(id))
      .sort((a, b) => {
        const x = rendezvous(e.desired.buildId, a)
        const y = rendezvous(e.desired.buildId, b)
        return x < y ? -1 : x > y ? 1 : 0
      })
    const want = holds(e.desired)
    const next = [...shipped, ...others].find((c) => {
      if (c === e.desired.node || !alive(c, windowMs) || builds.get(build(e))?.has(c)) return false
      // without the nodes' records there is no room to judge: the shipped candidates alone, as shipped
      if (!rooms) return true
      const room = rooms.find((r) => r.id === c)
      if (!room) return false
      const u = used.get(c) ?? { vcpus: 0, memoryMb: 0, diskGb: 0 }
      return shortOf({ vcpus: room.capacity.vcpus - u.vcpus, memoryMb: room.capacity.memoryMb - u.memoryMb, diskGb: room.capacity.diskGb - u.diskGb }, want) === undefined
    })
    const host = next ?? e.desired.node
    hosts.set(`${e.owner}/${e.id}`, host)
    placed(e, host)
    const u = used.get(host) ?? { vcpus: 0, memoryMb: 0, diskGb: 0 }
    used.set(host, { vcpus: u.vcpus + want.vcpus, memoryMb: u.memoryMb + want.memoryMb, diskGb: u.diskGb + want.diskGb })
  }
  return hosts
}
