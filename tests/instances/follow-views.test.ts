// followInstances (plugins/instances/lib/views.ts) follows both the `instances` and the `nodes`
// collection over the node's watch stream: a node's record changing (its room, say) changes where a
// replica goes, and neither collection is read again on a change. The node is a scripted client:
// its watch streams are fed by the test, so every yield is caused by one known change.
import t from 'tap'
import type { NodeClient } from '../../core/client.js'
import { followInstances, type InstanceView } from '../../plugins/instances/lib/views.js'
import type { StateRecord } from '../../plugins/state/index.js'

const OWNER = `0x${'a'.repeat(40)}`
const A = `0x${'1'.repeat(40)}`
const B = `0x${'2'.repeat(40)}`
const NOW = 10_000_000

let n = 0
const record = (collection: string, key: string, value: unknown, deleted = false): StateRecord => ({ collection, key, value, deleted, hash: String(n), t: { ms: NOW, n: n++ } as never, author: OWNER })

/** A node whose watch streams the test feeds, and which answers liveness (A gone for ten minutes, B just heard). */
function scriptedNode() {
  const queues = new Map<string, { items: unknown[]; wake?: () => void }>()
  const queue = (c: string) => queues.get(c) ?? queues.set(c, { items: [] }).get(c)!
  const gets: string[] = []
  const client = {
    async get(path: string) {
      gets.push(path)
      if (path === '/v1/state/liveness') return { now: NOW, seen: { [A]: NOW - 600_000, [B]: NOW } }
      throw new Error(`not expected: GET ${path}`)
    },
    async *stream(path: string, signal?: AbortSignal) {
      const q = queue(decodeURIComponent(/\/v1\/state\/watch\/([^?]+)/.exec(path)![1]))
      while (!signal?.aborted) {
        if (q.items.length) {
          yield q.items.shift()
          continue
        }
        await new Promise<void>((resolve) => {
          q.wake = resolve
          signal?.addEventListener('abort', () => resolve(), { once: true })
        })
      }
    },
  } as unknown as NodeClient
  const push = (collection: string, ...items: unknown[]) => {
    const q = queue(collection)
    q.items.push(...items)
    q.wake?.()
  }
  return { client, push, gets }
}

const desired = { buildId: 'b', image: 'f'.repeat(64), node: A, state: 'running', name: 'web-1', vcpus: 1, memoryMb: 256, diskGb: 1, candidates: [B], failoverMs: 60_000 }
const room = (vcpus: number) => ({ capacity: { vcpus, memoryMb: 4096, diskGb: 50 } })

t.test('a change to a node record yields the views again, with hosts from the followed nodes', async (t) => {
  const node = scriptedNode()
  const stop = new AbortController()
  t.teardown(() => stop.abort())
  const it = followInstances(node.client, OWNER, stop.signal)[Symbol.asyncIterator]()

  node.push('instances', record('instances', `${OWNER}/web-1/desired`, desired), { synced: true })
  node.push('nodes', record('nodes', A, room(4)), record('nodes', B, room(4)), { synced: true })
  const first = (await it.next()).value as InstanceView[]
  t.same(first.map((v) => [v.id, v.host]), [['web-1', B]], "A is gone: web-1 runs on B, which has room")

  // B now offers nothing: only the nodes collection changed, and web-1 has nowhere to go but stay
  node.push('nodes', record('nodes', B, room(0)))
  const second = (await it.next()).value as InstanceView[]
  t.same(second.map((v) => [v.id, v.host]), [['web-1', A]], 'the change to B was followed: no room there')

  t.same(node.gets.filter((p) => p.startsWith('/v1/state/records/')), [], 'no collection was read again')
  t.ok(node.gets.length >= 2 && node.gets.every((p) => p === '/v1/state/liveness'), 'liveness read with each yield (it moves with time, not with records)')

  stop.abort()
  t.same(await it.next(), { done: true, value: undefined }, 'aborting ends the follow')
})

t.test('a node that cannot be followed is the caller\'s error', async (t) => {
  const client = {
    async get() {
      return { now: NOW, seen: {} }
    },
    // eslint-disable-next-line require-yield
    async *stream() {
      throw new Error('connect ECONNREFUSED')
    },
  } as unknown as NodeClient
  await t.rejects(followInstances(client, OWNER).next(), /ECONNREFUSED/)
})
