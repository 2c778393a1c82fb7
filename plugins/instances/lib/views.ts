import type { Signer } from '../../../core/auth/sign.js'
import type { NodeClient } from '../../../core/client.js'
import { FormError } from '../../../core/errors.js'
import { desiredEntries, hostsOf, livenessFrom, type HostsOptions, type Liveness } from './hosts.js'
import { desiredKey, parseDesired, parseInstanceKey, type DesiredInstance, type DesiredState, type ObservedInstance } from './records.js'
import { loadFollow, type StateRecord, type Timestamp } from '../../state/index.js'

/** An owner's instance as state tells it: what the owner wants and what the hosting node reports. */
export interface InstanceView {
  owner: string
  id: string
  desired?: DesiredInstance
  /** the desired record as stored (its timestamp orders the next write after it) */
  record?: StateRecord
  /** the node that hosts it now: its chosen node, or a candidate while that node is gone */
  host?: string
  /** what the hosting node reports, if it has reported yet */
  observed?: ObservedInstance
  /** reports of other nodes (an earlier host) */
  others: { node: string; observed: ObservedInstance }[]
}

/** Every live record of a collection (under `prefix`), page by page. */
export async function listRecords(client: NodeClient, collection: string, prefix = ''): Promise<StateRecord[]> {
  const records: StateRecord[] = []
  let cursor: string | undefined
  do {
    const page = await client.get<{ records: StateRecord[]; cursor?: string }>(
      `/v1/state/records/${collection}?prefix=${encodeURIComponent(prefix)}&limit=10000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    )
    records.push(...page.records)
    cursor = page.cursor
  } while (cursor)
  return records
}

/**
 * Every instance record of `owner`, joined by instance, with the node that hosts each now as the
 * node the CLI talks to computes it (its liveness, its clock, its quorum: see hostsOf).
 */
export async function listInstances(client: NodeClient, owner: string): Promise<InstanceView[]> {
  // every owner's instances: theirs hold room on the nodes this owner's replicas may move to
  const [records, nodes, live] = await Promise.all([listRecords(client, 'instances'), listRecords(client, 'nodes'), readLiveness(client)])
  return instanceViews(records, live.seen, owner, live.now, { nodes, self: live.self })
}

/**
 * `owner`'s instances, followed over the node's watch stream: yields them once read, then after
 * every change to an instance record or a node's record (both followed with followRecords, so
 * neither is re-read on a change). Hosts are computed as in listInstances, from every owner's
 * instances, the nodes and the node's liveness, which is read again with each change: it moves
 * with time, not with records.
 */
export async function* followInstances(client: NodeClient, owner: string, signal?: AbortSignal): AsyncGenerator<InstanceView[]> {
  const { followRecords } = await loadFollow()
  const stop = new AbortController()
  const onAbort = () => stop.abort()
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted) stop.abort()
  const latest: { instances?: ReadonlyMap<string, StateRecord>; nodes?: ReadonlyMap<string, StateRecord> } = {}
  let version = 0
  let failure: { error: unknown } | undefined
  let wake: (() => void) | undefined
  const pump = async (collection: 'instances' | 'nodes') => {
    try {
      for await (const records of followRecords(client, collection, { signal: stop.signal })) {
        latest[collection] = records
        version++
        wake?.()
      }
    } catch (error) {
      failure ??= { error }
    } finally {
      // an ended follow (aborted, or failed) must not leave the loop below waiting
      wake?.()
    }
  }
  const pumps = [pump('instances'), pump('nodes')]
  try {
    let yielded = 0
    while (!stop.signal.aborted) {
      if (failure) throw failure.error
      if (latest.instances && latest.nodes && version !== yielded) {
        yielded = version
        const live = await readLiveness(client)
        // the maps change in place as the follows go on: copied now, before the consumer reads them
        yield instanceViews([...latest.instances.values()], live.seen, owner, live.now, { nodes: [...latest.nodes.values()], self: live.self })
        continue
      }
      await new Promise<void>((resolve) => (wake = resolve))
      wake = undefined
    }
  } finally {
    stop.abort()
    signal?.removeEventListener('abort', onAbort)
    await Promise.allSettled(pumps)
  }
}

/** Which nodes the node the CLI talks to has heard from, and when, by its clock (not this machine's), and its address. */
export async function readLiveness(client: NodeClient): Promise<{ now: number; self?: string; seen: Liveness }> {
  return livenessFrom(await client.get<{ now: number; self?: string; seen: Record<string, number> }>('/v1/state/liveness'))
}

/**
 * `owner`'s instances among records of collection `instances` (others' are skipped), given the node's
 * liveness view; `hosts` gives the nodes' records and the node's address, so that fallbacks and
 * fencing come out as that node computes them.
 */
export function instanceViews(records: StateRecord[], seen: Liveness, owner: string, now: number, hosts: HostsOptions = {}): InstanceView[] {
  const hostOf = hostsOf(desiredEntries(records), seen, now, hosts)
  const byId = new Map<string, InstanceView>()
  const view = (id: string) => {
    let v = byId.get(id)
    if (!v) byId.set(id, (v = { owner, id, others: [] }))
    return v
  }
  const observed: { id: string; node: string; value: ObservedInstance }[] = []
  for (const r of records) {
    const k = parseInstanceKey(r.key)
    if (!k || k.owner !== owner) continue
    if (k.kind === 'desired') {
      const parsed = parseDesired(r.value)
      const v = view(k.id)
      v.record = r
      if ('desired' in parsed) v.desired = parsed.desired
    } else observed.push({ id: k.id, node: k.node, value: r.value as ObservedInstance })
  }
  for (const v of byId.values()) v.host = hostOf.get(`${owner}/${v.id}`)
  for (const o of observed) {
    const v = view(o.id)
    if (v.host === o.node) v.observed = o.value
    else v.others.push({ node: o.node, observed: o.value })
  }
  return [...byId.values()].filter((v) => v.desired).sort((a, b) => a.id.localeCompare(b.id))
}

/** The instances a command names: one by id (or unique name), or every instance of a build. */
export function selectInstances(all: InstanceView[], ref: { instance?: string; buildId?: string }): InstanceView[] {
  if (ref.buildId !== undefined) {
    const found = all.filter((v) => v.desired?.buildId === ref.buildId)
    if (!found.length) throw new FormError('INSTANCE_NOT_FOUND', `you have no instances of build ${ref.buildId}`, { hint: 'list yours with `form manage list`' })
    return found
  }
  if (!ref.instance) throw new FormError('USAGE', 'name an instance, or give --build-id', { hint: 'e.g. `form manage stop web-1` or `form manage stop --build-id <id>`' })
  const byId = all.find((v) => v.id === ref.instance)
  if (byId) return [byId]
  const byName = all.filter((v) => v.desired?.name === ref.instance)
  if (byName.length === 1) return byName
  if (byName.length > 1) {
    throw new FormError('INSTANCE_AMBIGUOUS', `${byName.length} of your instances are named "${ref.instance}": ${byName.map((v) => v.id).join(', ')}`, { hint: 'name one by its id' })
  }
  throw new FormError('INSTANCE_NOT_FOUND', `you have no instance "${ref.instance}"`, { hint: 'list yours with `form manage list`' })
}

/**
 * Writes a new desired state for an instance: an operation signed by the owner's wallet (through a
 * delegated key), submitted to the node, which verifies and replicates it like any other.
 */
export async function writeDesired(client: NodeClient, signer: Signer, view: InstanceView, state: DesiredState): Promise<void> {
  await writeDesiredRecord(client, signer, view.id, { ...view.desired!, state }, view.record?.t)
}

/** Creates or replaces `instances/<owner>/<id>/desired` (also what `form pack ship` writes). */
export async function writeDesiredRecord(client: NodeClient, signer: Signer, id: string, desired: DesiredInstance, previous?: Timestamp): Promise<void> {
  const { loadOwnerOps } = await import('../../state/index.js')
  const { submitOwnerRecord } = await loadOwnerOps()
  await submitOwnerRecord(client, signer, 'instances', desiredKey(signer.address, id), desired, `instance ${id}`, previous)
}

export type ConsoleChunk = { data: string; offset: number; size: number }

/** Reads an instance's console from its hosting node (`signed` by its owner): from `offset`, else its last `tail` bytes. */
export function readConsole(signed: NodeClient, id: string, at: { offset: number; waitMs?: number } | { tail: number }): Promise<ConsoleChunk> {
  return signed.post<ConsoleChunk>('/v1/node/instances/console', { id, ...at })
}

/** The end of an instance's console (its last `bytes`, whole lines), as text without terminal control sequences. */
export async function consoleTail(signed: NodeClient, id: string, bytes = 3000): Promise<string> {
  const chunk = await readConsole(signed, id, { tail: bytes })
  const data = Buffer.from(chunk.data, 'base64')
  let text = data.toString('utf8')
  // cut in the middle of a line: from the next whole one
  if (chunk.offset > data.length) text = text.slice(text.indexOf('\n') + 1)
  return text
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/[^\x09\x0a\x20-\x7e\u00a0-\uffff]/g, '')
    .trimEnd()
}
