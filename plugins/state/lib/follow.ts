import { setTimeout as sleep } from 'node:timers/promises'
import type { NodeClient } from '../../../core/client.js'
import type { StateRecord } from './store.js'

export interface FollowOptions {
  /** only keys that start with this */
  prefix?: string
  signal?: AbortSignal
}

/**
 * The records of a collection as a node holds them, kept current over its watch stream instead of
 * re-reading the collection on a timer: yields once the records are read, then after every change.
 * It yields the same map each time, updated in place: read it before asking for the next.
 *
 * A node that cannot be reached at first is the caller's error; once it has answered, a broken
 * stream (the node restarting, say) is followed again with backoff and the records read afresh.
 * Ends when `signal` aborts.
 */
export async function* followRecords(client: NodeClient, collection: string, options: FollowOptions = {}): AsyncGenerator<ReadonlyMap<string, StateRecord>> {
  const { prefix = '', signal } = options
  const path = `/v1/state/watch/${encodeURIComponent(collection)}?snapshot=1&prefix=${encodeURIComponent(prefix)}`
  let answered = false
  let retries = 0
  while (!signal?.aborted) {
    const records = new Map<string, StateRecord>()
    let synced = false
    try {
      for await (const item of client.stream<StateRecord | { synced: true }>(path, signal)) {
        if ('synced' in item) {
          synced = answered = true
          retries = 0
          yield records
          continue
        }
        if (item.deleted) records.delete(item.key)
        else records.set(item.key, item)
        if (synced) yield records
      }
    } catch (error) {
      if (signal?.aborted) return
      if (!answered) throw error
    }
    // the stream ended or broke: read everything again, after a pause that grows while it keeps failing
    await sleep(Math.min(250 * 2 ** retries++, 5_000), undefined, { signal }).catch(() => {})
  }
}
