import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { form, until } from '../helpers/form.js'
import { api, heartbeatsAfter, startNetwork } from '../helpers/network.js'

const PUSH = fileURLToPath(new URL('./fixtures/push-ops.ts', import.meta.url))
const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 5000\n'

/** Pushes `ops` to the node at `target` from a fresh libp2p peer (the file goes in `dir`, a folder the test owns). */
async function push(target: string, ops: unknown[], dir: string): Promise<{ sent?: boolean; error?: string }> {
  const file = join(dir, `ops-${Date.now()}.json`)
  await writeFile(file, JSON.stringify(ops))
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', PUSH, target, file])
  return JSON.parse(stdout.trim())
}

t.test('a poisoned timestamp, posted over HTTP or pushed over P2P, stops no node from writing', async (t) => {
  const net = await startNetwork(t, 2, FAST)
  const [a, b] = net.envs
  const mallory = authorFromKeys(generateAuthorKeys())
  const now = Date.now()
  // the attack as reported: a counter of 2^53-1 made each node's next own write overflow
  const overflow = (ms: number) => createOp(mallory, 'accounts', mallory.address, { x: 1 }, { ms, n: 2 ** 53 - 1 })
  // the largest counter that is valid, 40 s ahead (inside the allowed skew): stored, and observed by the clocks
  const maxed = (ms: number, name: string) => createOp(mallory, 'dns', `${mallory.address}/${name}`, { x: 2 }, { ms, n: 2 ** 31 - 1 })

  const http = await api(b).post<{ accepted: number; rejected: { index: number; code: string; message: string }[] }>('/v1/state/ops', { ops: [overflow(now + 40_000), maxed(now + 40_000, 'http')] })
  t.equal(http.accepted, 1, 'over HTTP: the valid maximal timestamp is accepted')
  t.match(http.rejected, [{ index: 0, code: 'OP_MALFORMED', message: /field t must be/ }], 'the overflowing one is malformed, not a crash')

  const pushed = await push(net.boot, [overflow(now + 45_000), maxed(now + 45_000, 'p2p')], a.dir)
  t.ok(pushed.sent, `over P2P: pushed (${pushed.error ?? 'ok'})`)
  const infoA = await until('node A to count the malformed pushed op', async () => {
    const info = await api(a).get<{ rejected: Record<string, Record<string, number>> }>('/v1/state/info')
    return Object.values(info.rejected).some((c) => c.OP_MALFORMED) ? info : undefined
  })
  t.ok(infoA, 'node A rejected the overflow as OP_MALFORMED')

  // the network keeps working: each node writes its heartbeat and hears the other's
  const after = Date.now()
  for (const fe of net.envs) {
    const seen = await heartbeatsAfter(fe, net.addresses, after)
    t.equal(Object.keys(seen).length, 2, 'fresh heartbeats from both nodes')
  }
  for (const [i, fe] of net.envs.entries()) {
    const rec = await api(fe).get<{ t: { ms: number; n: number } }>(`/v1/state/records/nodes/${net.addresses[i]}`)
    t.ok(rec.t.n <= 2 ** 31 - 1 && rec.t.ms <= Date.now() + 60_000, `node ${i + 1}'s own record is written at a sane time ${JSON.stringify(rec.t)}`)
  }
  await until('both valid poisoned-looking writes on both nodes', async () => {
    for (const fe of net.envs) {
      const keys = (await api(fe).get<{ records: { key: string }[] }>('/v1/state/records/dns')).records.map((r) => r.key)
      if (keys.length !== 2) return undefined
    }
    return true
  })
  t.pass('valid operations still replicate')
})

const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((p) => existsSync(p))

t.test('a node 5 minutes behind is told, holds what is ahead until due, and bans no honest peer', { skip: LIBFAKETIME ? false : 'libfaketime is not installed (apt-get install faketime)' }, async (t) => {
  // node 3's clock is 5 minutes behind (libfaketime): the others' operations are 5 minutes ahead of it
  const net = await startNetwork(t, 3, FAST, (i) => (i === 2 ? { LD_PRELOAD: LIBFAKETIME, FAKETIME: '-300', FAKETIME_DONT_FAKE_MONOTONIC: '1' } : {}), (i) => i !== 2)
  const [a, , slow] = net.envs
  const slowClock = (await api(slow).get<{ now: number }>('/v1/state/liveness')).now
  t.ok(Date.now() - slowClock > 290_000, `node 3's clock is ${Math.round((Date.now() - slowClock) / 1000)} s behind`)

  // it keeps taking part: it hears the others (their records are held, then applied) and they hear it
  // (node 2's admission, written by node 1 at node 1's time, is itself held on node 3 until due:
  // until then node 3 counts node 2's records nowhere; it counts node 1, the genesis admin, at once)
  const since = (await api(slow).get<{ now: number }>('/v1/state/liveness')).now
  await heartbeatsAfter(slow, [net.addresses[0], net.addresses[2]], since)
  const now = Date.now()
  await heartbeatsAfter(a, net.addresses, now)
  await heartbeatsAfter(net.envs[1], net.addresses, now)
  t.pass('the slow node and the others keep hearing each other')

  // it is told, in its status and its log
  const status = await until('the slow node to report its clock', async () => {
    const r = await form(slow, ['node', 'status'])
    return /clock is about \d+ s behind/.test(r.stdout) ? r.stdout : undefined
  })
  t.match(status, /clock: this node's clock is about (29\d|30\d) s behind its 2 peer\(s\)/, 'form node status says the clock is 5 minutes behind')
  t.match(status, /Fix the clock/)
  t.match(await readFile(slow.logFile, 'utf8'), /clock is about \d+ s behind/, 'and so does its log')
  // the peers tell it too: they see its clock behind theirs
  const fromA = await until('node 1 to notice', async () => {
    const info = await api(a).get<{ clock: { skewedPeers: Record<string, number> } }>('/v1/state/info')
    return info.clock.skewedPeers[net.addresses[2]] !== undefined ? info.clock : undefined
  })
  t.ok(fromA.skewedPeers[net.addresses[2]] < -290_000, `node 1 sees node 3's clock ${Math.round(fromA.skewedPeers[net.addresses[2]] / 1000)} s off, and no other: ${JSON.stringify(fromA.skewedPeers)}`)
  t.equal(Object.keys(fromA.skewedPeers).length, 1)

  // held, not rejected: no honest peer is counted or banned anywhere
  const sync = await api(slow).get<{ bans: number; invalid: Record<string, number> }>('/v1/state/sync')
  t.equal(sync.bans, 0, 'the slow node banned nobody')
  t.same(sync.invalid, {}, 'and counted no operation of an honest peer as invalid')
  const info = await api(slow).get<{ rejected: Record<string, unknown>; clock: { held: number } }>('/v1/state/info')
  t.same(info.rejected, {}, 'no rejection at all')
  // an operation the slow node held reaches its records once due (the others' writes, 5 minutes late)
  const dev = authorFromKeys(generateAuthorKeys())
  const op = createOp(dev, 'dns', `${dev.address}/late`, { ok: true }, { ms: Date.now(), n: 0 })
  t.equal((await api(a).post<{ accepted: number }>('/v1/state/ops', { ops: [op] })).accepted, 1)
  await until('node 3 to hold the write', async () => ((await api(slow).get<{ clock: { held: number } }>('/v1/state/info')).clock.held > 0 ? true : undefined))
  t.pass('the slow node holds what is ahead of it (applied when its clock reaches it, up to max_hold_ms)')
})

t.test('a node 5 minutes ahead is held by the others, told, and bans nothing', { skip: LIBFAKETIME ? false : 'libfaketime is not installed (apt-get install faketime)' }, async (t) => {
  const net = await startNetwork(t, 3, FAST, (i) => (i === 2 ? { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+300', FAKETIME_DONT_FAKE_MONOTONIC: '1' } : {}), (i) => i !== 2)
  const [a, b, fast] = net.envs
  const now = Date.now()
  // its heartbeats are 5 minutes ahead of the others: held, yet heard (liveness counts arrival)
  await heartbeatsAfter(a, net.addresses, now)
  await heartbeatsAfter(b, net.addresses, now)
  t.pass('the others hear the fast node')
  const info = await api(a).get<{ rejected: Record<string, unknown>; clock: { held: number; skewedPeers: Record<string, number> } }>('/v1/state/info')
  t.ok(info.clock.held > 0, `node 1 holds the fast node's operations (${info.clock.held})`)
  t.same(info.rejected, {}, 'and rejects none')
  t.ok(info.clock.skewedPeers[net.addresses[2]] > 290_000, 'node 1 names the fast node')
  const status = await until('the fast node to report its clock', async () => {
    const r = await form(fast, ['node', 'status'])
    return /clock is about \d+ s ahead of/.test(r.stdout) ? r.stdout : undefined
  })
  t.match(status, /clock: this node's clock is about (29\d|30\d) s ahead of its 2 peer\(s\)/, 'form node status says it is 5 minutes ahead')
  for (const fe of net.envs) t.equal((await api(fe).get<{ bans: number }>('/v1/state/sync')).bans, 0, 'no bans')
})
