import type { StateRecord } from '../../../state/index.js'
import { DEFAULT_FAILOVER_MS, parseDesired, parseInstanceKey, type DesiredInstance } from './records.js'

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

/** The liveness a node reports over its API ({now, seen}), as a map and the node's clock. */
export function livenessFrom(reply: { now: number; seen: Record<string, number> }): { now: number; seen: Liveness } {
  return { now: reply.now, seen: new Map(Object.entries(reply.seen)) }
}

/**
 * `owner/id` → the node that hosts it now. Replicas of one build (same owner and build id) are
 * placed together so two never land on one node; deleted ones hold no node.
 */
export function hostsOf(entries: DesiredEntry[], beats: Liveness, now: number): Map<string, string> {
  const hosts = new Map<string, string>()
  const groups = new Map<string, DesiredEntry[]>()
  for (const e of entries) {
    hosts.set(`${e.owner}/${e.id}`, e.desired.node)
    if (!e.desired.candidates?.length || e.desired.state === 'deleted') continue
    const g = `${e.owner}/${e.desired.buildId}`
    const group = groups.get(g)
    if (group) group.push(e)
    else groups.set(g, [e])
  }
  for (const group of groups.values()) {
    const failoverMs = group[0].desired.failoverMs ?? DEFAULT_FAILOVER_MS
    const alive = (node: string) => now - (beats.get(node) ?? -Infinity) <= failoverMs
    const assigned = assignHosts(
      group.map((e) => ({ id: e.id, node: e.desired.node, candidates: e.desired.candidates })),
      alive,
    )
    for (const e of group) hosts.set(`${e.owner}/${e.id}`, assigned.get(e.id)!)
  }
  return hosts
}

/** One replica as its desired record places it. */
export interface ReplicaPlacement {
  id: string
  /** the node `form pack ship` chose */
  node: string
  /** where it may move when that node is gone, best first (pack's scheduler's ranking at ship time) */
  candidates?: string[]
}

/**
 * Which node hosts each replica of one build now. A replica stays on its chosen node while that
 * node is alive; the replicas of nodes that are gone move, in id order, to their first live
 * candidate that hosts no other replica of the build. Every node computes this from the same
 * records and heartbeats, so they agree on who runs what without a coordinator; when the chosen
 * node comes back, the replica returns to it. A replica with no live candidate stays where it was.
 */
export function assignHosts(replicas: ReplicaPlacement[], alive: (node: string) => boolean): Map<string, string> {
  const hosts = new Map<string, string>()
  const taken = new Set<string>()
  const sorted = [...replicas].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  for (const r of sorted) {
    if (!alive(r.node)) continue
    hosts.set(r.id, r.node)
    taken.add(r.node)
  }
  for (const r of sorted) {
    if (hosts.has(r.id)) continue
    const next = (r.candidates ?? []).find((c) => c !== r.node && alive(c) && !taken.has(c))
    hosts.set(r.id, next ?? r.node)
    if (next) taken.add(next)
  }
  return hosts
}
