import { assignHosts } from '../../../pack/lib/scheduler.js'
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

/** node address → its last heartbeat (ms since epoch), from records of collection `nodes`. */
export function heartbeats(nodeRecords: StateRecord[]): Map<string, number> {
  const beats = new Map<string, number>()
  for (const r of nodeRecords) {
    const beat = (r.value as { heartbeat?: unknown } | undefined)?.heartbeat
    if (!r.deleted && typeof beat === 'number') beats.set(r.key, beat)
  }
  return beats
}

/**
 * `owner/id` → the node that hosts it now. Replicas of one build (same owner and build id) are
 * placed together so two never land on one node; deleted ones hold no node.
 */
export function hostsOf(entries: DesiredEntry[], beats: Map<string, number>, now: number): Map<string, string> {
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
