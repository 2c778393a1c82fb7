// Following records over a node's watch stream (plugins/state/lib/follow.ts): what `form pack build`,
// `form pack ship` and `form manage … --wait` wait on instead of re-reading collections on a timer.
import t from 'tap'
import { request } from 'node:http'
import { createClient } from '../../core/client.js'
import { MAX_STREAMS_PER_ADDRESS } from '../../core/daemon/server.js'
import { followRecords } from '../../plugins/state/lib/follow.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import type { StateRecord } from '../../plugins/state/lib/store.js'
import { makeEnv, startNode } from '../helpers/form.js'

const dev = authorFromKeys(generateAuthorKeys())
let n = 0
// a value of undefined deletes
const op = (key: string, value: unknown) => createOp(dev, 'dns', `${dev.address}/${key}`, value, { ms: Date.now(), n: n++ })

/** Takes follow results until `done` holds for the map, returning its keys then. */
async function until(it: AsyncIterator<ReadonlyMap<string, StateRecord>>, done: (m: ReadonlyMap<string, StateRecord>) => boolean): Promise<string[]> {
  for (;;) {
    const next = await it.next()
    if (next.done) throw new Error('the follow ended')
    if (done(next.value)) return [...next.value.keys()].sort()
  }
}

t.test('a follower gets the records as they are, then every change, and outlives a node restart', async (t) => {
  const fe = await makeEnv(t)
  let node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const client = createClient({ socket: fe.socket })
  t.match(await client.post('/v1/state/ops', { ops: [op('a', { ip: '10.1.0.1' }), op('b', { ip: '10.1.0.2' })] }), { accepted: 2 })

  const stop = new AbortController()
  t.teardown(() => stop.abort())
  const follow = followRecords(client, 'dns', { prefix: `${dev.address}/`, signal: stop.signal })[Symbol.asyncIterator]()
  const first = await follow.next()
  t.same([...first.value!.keys()].sort(), [`${dev.address}/a`, `${dev.address}/b`], 'the first yield holds what the node has')

  // a write and a delete arrive as changes (they may come in one or more yields)
  const pending = until(follow, (m) => m.has(`${dev.address}/c`) && !m.has(`${dev.address}/a`))
  t.match(await client.post('/v1/state/ops', { ops: [op('c', { ip: '10.1.0.3' }), op('a', undefined)] }), { accepted: 2 })
  t.same(await pending, [`${dev.address}/b`, `${dev.address}/c`], 'a new record appears, a deleted one goes')

  // the node restarts: the follower reads afresh and sees a write made after the restart
  await node.stop()
  node = await startNode(fe)
  const again = until(follow, (m) => m.has(`${dev.address}/d`))
  t.match(await client.post('/v1/state/ops', { ops: [op('d', { ip: '10.1.0.4' })] }), { accepted: 1 })
  t.same(await again, [`${dev.address}/b`, `${dev.address}/c`, `${dev.address}/d`], 'the follow went on after the restart')

  stop.abort()
  t.same(await follow.next(), { done: true, value: undefined }, 'aborting ends the follow')
})

t.test('a node that cannot be reached is the caller\'s error, not a silent wait', async (t) => {
  const fe = await makeEnv(t)
  const follow = followRecords(createClient({ socket: fe.socket }), 'dns')
  await t.rejects(follow.next(), /ENOENT|ECONNREFUSED|not running|reach/i)
})

/** Opens a watch over TCP; resolves with the status code once the answer's head arrives. */
function openWatch(api: string): Promise<{ status: number; body: () => Promise<string>; close: () => void }> {
  const [host, port] = api.split(':')
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: '/v1/state/watch/dns?snapshot=1', agent: false }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      const ended = new Promise<string>((r) => res.on('end', () => r(text)))
      resolve({ status: res.statusCode ?? 0, body: () => ended, close: () => req.destroy() })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('one address may hold only so many streams on a node; the operator\'s socket is not counted', async (t) => {
  const fe = await makeEnv(t)
  const node = await startNode(fe, ['--api-listen', '127.0.0.1:0'])
  t.teardown(() => node.stop('SIGKILL'))
  const api = (await createClient({ socket: fe.socket }).get<{ api: string[] }>('/v1/node')).api[0]
  const open: Awaited<ReturnType<typeof openWatch>>[] = []
  for (let i = 0; i < MAX_STREAMS_PER_ADDRESS; i++) open.push(await openWatch(api))
  t.teardown(() => open.forEach((w) => w.close()))
  t.ok(open.every((w) => w.status === 200), `${MAX_STREAMS_PER_ADDRESS} watches are served`)

  const refused = await openWatch(api)
  t.equal(refused.status, 429, 'one more is refused')
  t.match(JSON.parse(await refused.body()), { error: { code: 'API_TOO_MANY_STREAMS', hint: /close some/ } })

  // the local socket (the operator's) still follows
  const stop = new AbortController()
  t.teardown(() => stop.abort())
  const local = followRecords(createClient({ socket: fe.socket }), 'dns', { signal: stop.signal })[Symbol.asyncIterator]()
  t.ok((await local.next()).value, 'the operator follows over the local socket')

  // a stream given back makes room again (the node counts it once the connection closes)
  open.pop()!.close()
  let status = 0
  for (let i = 0; i < 50 && status !== 200; i++) {
    const w = await openWatch(api)
    status = w.status
    if (status === 200) open.push(w)
    else await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(status, 200, 'after one closes, a new watch is served')
})
