// Attacks on the P2P wire by a stranger with libp2p peers of its own: a valid batch too big for one
// frame, connections holding half-sent frames, a stalled blob provider, malformed frames and
// timestamps past the end of Date, an opsTo list claiming peers have what it pushes, and a wallet
// flooding POST /v1/state/ops. Each fails, and the honest nodes keep replicating.
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createClient } from '../../core/client.js'
import { BLOB_PROTOCOL, BlobStore, fetchFromProviders } from '../../plugins/net/lib/p2p/blobs.js'
import { FrameReader, writeFrame } from '../../plugins/net/lib/p2p/framing.js'
import { createHost } from '../../plugins/net/lib/p2p/host.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { makeEnv, startNode, until, type FormEnv, type NodeProcess } from '../helpers/form.js'
import { startNetwork } from '../helpers/network.js'
import { MiB, rssMiB, underAttackBound } from './fixtures/memory.js'

const HOSTILE = fileURLToPath(new URL('./fixtures/hostile-peer.ts', import.meta.url))

function hostile(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', HOSTILE, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: any[] = []
  let buf = ''
  const waiters: (() => void)[] = []
  child.stdout.on('data', (d) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
      for (const w of waiters.splice(0)) w()
    }
  })
  const exited = new Promise<void>((r) => child.on('exit', () => r()))
  return {
    child,
    lines,
    exited,
    async line(): Promise<any> {
      while (!lines.length) await new Promise<void>((r) => waiters.push(r))
      return lines.shift()
    },
  }
}


async function cluster(t: Test, n: number, config = ''): Promise<{ envs: FormEnv[]; nodes: NodeProcess[]; addr: string }> {
  const first = await makeEnv(t)
  if (config) await writeFile(join(first.configDir, 'operator.toml'), config)
  const nodes = [await startNode(first, ['--api-listen', '127.0.0.1:0'])]
  t.teardown(() => nodes[0].stop('SIGKILL'))
  const addr = (await createClient({ socket: first.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const envs = [first]
  for (let i = 1; i < n; i++) {
    const fe = await makeEnv(t, { FORM_BOOTSTRAP: addr })
    if (config) await writeFile(join(fe.configDir, 'operator.toml'), config)
    const node = await startNode(fe)
    t.teardown(() => node.stop('SIGKILL'))
    envs.push(fe)
    nodes.push(node)
  }
  return { envs, nodes, addr }
}

const dnsCount = async (fe: FormEnv, author: string) =>
  (await createClient({ socket: fe.socket }).get<{ records: unknown[] }>(`/v1/state/records/dns?prefix=${author}/&limit=1000`)).records.length

t.test('a batch of 250 valid 60 KB operations replicates to every node, and later pushes still work', async (t) => {
  const { envs } = await cluster(t, 3)
  await until('the nodes to connect', async () => ((await createClient({ socket: envs[0].socket }).get<{ peers: unknown[] }>('/v1/net/p2p')).peers.length >= 2 ? true : undefined))
  const author = authorFromKeys(generateAuthorKeys())
  const blob = 'x'.repeat(60_000)
  const ops = Array.from({ length: 250 }, (_, i) => createOp(author, 'dns', `${author.address}/big-${i}`, { blob }, { ms: Date.now(), n: i }))
  const r = await createClient({ socket: envs[0].socket, timeoutMs: 120_000 }).post<{ accepted: number }>('/v1/state/ops', { ops })
  t.equal(r.accepted, 250, `node A took the ${Math.round(JSON.stringify(ops).length / MiB)} MiB batch`)
  for (const fe of envs) await until(`all 250 on ${fe.dir}`, async () => ((await dnsCount(fe, author.address)) === 250 ? true : undefined), 120_000)
  t.pass('every node has all 250 (the batch went as several frames of at most 1 MiB)')
  const later = createOp(author, 'dns', `${author.address}/later`, { ok: true }, { ms: Date.now(), n: 0 })
  await createClient({ socket: envs[1].socket }).post('/v1/state/ops', { ops: [later] })
  for (const fe of envs) await until('the later write everywhere', async () => ((await dnsCount(fe, author.address)) === 251 ? true : undefined), 60_000)
  t.pass('a later push from another node reaches every node')
})

t.test('10 and 100 connections holding half-sent 4 MiB frames: memory stays bounded and comes back down', async (t) => {
  const { envs, nodes } = await cluster(t, 2)
  const pid = nodes[0].child.pid!
  const addr = (await createClient({ socket: envs[0].socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const author = authorFromKeys(generateAuthorKeys())
  let written = 0
  const write = async () => {
    const op = createOp(author, 'dns', `${author.address}/w-${written}`, { n: written }, { ms: Date.now(), n: 0 })
    await createClient({ socket: envs[1].socket }).post('/v1/state/ops', { ops: [op] })
    written++
  }
  const baseline = await rssMiB(pid)
  const p2pInfo = async () => (await createClient({ socket: envs[0].socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')).services.find((s) => s.name === 'p2p')!.info
  /** what the node's JavaScript holds: V8 heap in use plus buffers (frames live in arrayBuffers/external) */
  const heldMiB = (info: { memory: { heapUsed: number; external: number; arrayBuffers: number } }) => (info.memory.heapUsed + info.memory.external) / MiB
  const heldBaseline = heldMiB(await p2pInfo())
  const bound = underAttackBound(baseline)
  const returned = baseline + 128
  for (const n of [10, 100]) {
    const attack = hostile(['hold', addr, String(n)])
    const held = await attack.line()
    const during = await rssMiB(pid)
    const status = await createClient({ socket: envs[0].socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')
    const p2p = status.services.find((s) => s.name === 'p2p')!.info
    t.ok(during < bound, `${n} connections (${held.holding} holding, ${held.refused} refused: ${JSON.stringify(held.errors).slice(0, 200)}): RSS ${during.toFixed(0)} MiB, bound ${bound.toFixed(0)} MiB (baseline ${baseline.toFixed(0)})`)
    t.ok(p2p.bufferedBytes <= 128 * MiB, `frame bytes held: ${(p2p.bufferedBytes / MiB).toFixed(1)} MiB (peak ${(p2p.bufferedPeakBytes / MiB).toFixed(1)} MiB) of 128 MiB`)
    t.ok(p2p.connections <= 64 + 4, `open connections ${p2p.connections} (max_connections 64)`)
    if (n === 100) t.ok(held.refused > 0 || p2p.connections < 100, 'not all 100 got a connection')
    if (n === 10) t.ok(p2p.bufferedPeakBytes >= 32 * MiB, `the attack took hold: ${(p2p.bufferedPeakBytes / MiB).toFixed(0)} MiB of frames were held at its peak`)
    const reached = p2p.bufferedPeakBytes + 4 * MiB > 128 * MiB
    t.ok(!reached || p2p.limitsHit.max_buffered_bytes > 0, `limits hit are counted when reached: ${JSON.stringify(p2p.limitsHit)} (peak ${(p2p.bufferedPeakBytes / MiB).toFixed(0)} MiB)`)
    // honest small writes keep flowing while the strangers hold the budget
    await write()
    await until('an honest write to replicate during the attack', async () => ((await dnsCount(envs[0], author.address)) === written ? true : undefined), 30_000)
    attack.child.stdin!.end()
    await attack.exited
    // Given back: what the node's JavaScript holds returns to its baseline (the p2p service runs a full
    // collection once the held frame bytes fall; without it ~140 MiB stayed). The process's RSS keeps what
    // glibc and V8 retain of freed pages (measured 348-635 MiB after close), so it is bounded, not required
    // to return to the baseline.
    const after = await until(
      'memory to come back down',
      async () => {
        const info = await p2pInfo()
        return info.bufferedBytes === 0 && heldMiB(info) < heldBaseline + 64 ? info : undefined
      },
      60_000,
    ).catch(() => p2pInfo())
    t.equal(after.bufferedBytes, 0, `after the ${n} closed: no frame bytes held`)
    t.ok(heldMiB(after) < heldBaseline + 64, `after the ${n} closed: the heap and buffers hold ${heldMiB(after).toFixed(0)} MiB (baseline ${heldBaseline.toFixed(0)} + 64)`)
    // The process gives the freed pages back too (a full collection, then glibc's malloc_trim) within a
    // few of the releaser's 10 s looks: measured +68 and +91 MiB over the baseline after the 10 and 100
    // rounds (without the trim: +133 and +228 here, +366 on CI, and never lower).
    const rssAfter = await until('RSS to come back down', async () => ((await rssMiB(pid)) < returned ? rssMiB(pid) : undefined), 45_000).catch(() => rssMiB(pid))
    t.comment(`after the ${n} closed: ${JSON.stringify(Object.fromEntries(Object.entries((await p2pInfo()).memory).map(([k, v]) => [k, Math.round((v as number) / MiB)])))} MiB`)
    t.ok(rssAfter < returned, `after the ${n} closed: RSS ${rssAfter.toFixed(0)} MiB, back within ${returned.toFixed(0)} MiB (baseline ${baseline.toFixed(0)} + 128)`)
  }
  await write()
  await until('a write after the attacks', async () => ((await dnsCount(envs[0], author.address)) === written ? true : undefined), 30_000)
  t.pass(`all ${written} honest writes replicated`)
})

t.test('a stalled blob provider is dropped and the next one serves the blob within the read timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'form-stall-'))
  const mk = async (name: string) => (await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], datastorePath: join(dir, name) })).node
  const [fetcher, staller, honest] = await Promise.all([mk('f'), mk('s'), mk('h')])
  t.teardown(() => Promise.all([fetcher.stop(), staller.stop(), honest.stop()]))
  const good = new BlobStore(join(dir, 'good'))
  const hash = await good.put(Buffer.alloc(3 * MiB, 7))
  await honest.handle(BLOB_PROTOCOL, (stream) => good.serve(stream))
  // announces the blob, sends its header, then nothing, forever
  await staller.handle(BLOB_PROTOCOL, async (stream) => {
    await new FrameReader(stream, 1024).next()
    await writeFrame(stream, 2, Buffer.from(JSON.stringify({ size: 3 * MiB })))
  })
  const timeoutMs = 2000
  const mine = new BlobStore(join(dir, 'mine'))
  const failures: string[] = []
  async function* providers() {
    yield 'staller'
    yield 'honest'
  }
  const t0 = Date.now()
  const result = await fetchFromProviders(mine, hash, providers(), (p) => fetcher.dialProtocol((p === 'staller' ? staller : honest).getMultiaddrs()[0], BLOB_PROTOCOL), {
    maxBytes: 10 * MiB,
    timeoutMs,
    onFailure: (p, e) => failures.push(`${p}: ${(e as { code?: string }).code}`),
  })
  const elapsed = Date.now() - t0
  t.same(result, { provider: 'honest' }, 'the honest provider served it')
  t.same(failures, ['staller: P2P_TIMEOUT'], 'the stalled one was dropped for a timeout')
  t.ok(elapsed >= timeoutMs && elapsed < timeoutMs + 5000, `in ${elapsed} ms (read timeout ${timeoutMs} ms)`)
  t.equal(await mine.size(hash), 3 * MiB)
})

t.test('a peer trickling a frame byte by byte is cut off at the frame timeout, however steady its bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'form-trickle-'))
  const mk = async (name: string) => (await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], datastorePath: join(dir, name) })).node
  const [reader, trickler] = await Promise.all([mk('r'), mk('t')])
  t.teardown(() => Promise.all([reader.stop(), trickler.stop()]))
  const outcome = new Promise<{ code?: string; message: string; ms: number }>((resolve) => {
    void reader.handle('/test/trickle', async (stream) => {
      const t0 = Date.now()
      try {
        await new FrameReader(stream, { maxFrame: 1024 * 1024, timeoutMs: 1000, frameTimeoutMs: 1500 }).next()
        resolve({ message: 'read a whole frame', ms: Date.now() - t0 })
      } catch (error) {
        resolve({ code: (error as { code?: string }).code, message: (error as Error).message, ms: Date.now() - t0 })
      }
      stream.abort(new Error('done'))
    })
  })
  const stream = await trickler.dialProtocol(reader.getMultiaddrs()[0], '/test/trickle')
  const header = Buffer.alloc(5)
  header[0] = 1
  header.writeUInt32BE(512 * 1024, 1)
  const sink = stream as unknown as { send(b: Uint8Array): boolean }
  sink.send(header)
  const timer = setInterval(() => {
    try {
      sink.send(Buffer.from([0x20]))
    } catch {
      clearInterval(timer)
    }
  }, 200)
  t.teardown(() => clearInterval(timer))
  const r = await outcome
  t.equal(r.code, 'P2P_TIMEOUT', r.message)
  t.match(r.message, /frame_timeout_ms/)
  t.ok(r.ms >= 1400 && r.ms < 4000, `cut off after ${r.ms} ms (frame timeout 1500 ms, a byte every 200 ms)`)
})

t.test('malformed frames and out-of-range timestamps get the peer banned (id and address), with no 500 and no honest op dropped', async (t) => {
  const { envs } = await cluster(t, 2)
  const addr = (await createClient({ socket: envs[0].socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const node = (await createClient({ socket: envs[0].socket }).get<{ api: string[] }>('/v1/node')).api[0]
  const info = async (fe = envs[0]) => (await createClient({ socket: fe.socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')).services
  const syncInfo = async () => (await info()).find((s) => s.name === 'sync')!.info
  const p2pInfo = async () => (await info()).find((s) => s.name === 'p2p')!.info

  // over HTTP: the far-future op is rejected, its honest neighbour stored, no 500
  const author = authorFromKeys(generateAuthorKeys())
  const honest = createOp(author, 'dns', `${author.address}/honest`, { ok: true }, { ms: Date.now(), n: 0 })
  const far = createOp(author, 'dns', `${author.address}/far`, { ok: false }, { ms: 9e15, n: 0 })
  const r = await createClient({ url: `http://${node}` }).post<{ accepted: number; rejected: { code: string }[] }>('/v1/state/ops', { ops: [far, honest] })
  t.equal(r.accepted, 1, 'the honest operation in the batch is stored')
  t.equal(r.rejected.length, 1, `the out-of-range one is rejected (${r.rejected[0]?.code})`)

  // over P2P from 127.0.0.3: mixed batches; the valid ops arrive, the bad ones count towards a ban
  const ts = hostile(['timestamps', addr, '12', '127.0.0.3'])
  await ts.exited
  const tsAuthor = ts.lines.at(-1).author as string
  const s1 = await until('node A to ban the timestamp liar', async () => ((await syncInfo()).bans > 0 ? syncInfo() : undefined), 30_000).catch(async (error) => {
    t.comment(JSON.stringify({ rounds: ts.lines, sync: await syncInfo() }))
    throw error
  })
  t.equal(s1.bans, 1, 'the peer sending out-of-range timestamps is banned')
  const goods = await dnsCount(envs[0], tsAuthor)
  t.ok(goods >= 7, `${goods} valid operations from its batches were stored (none dropped for the bad ones beside them)`)
  const rejoin = hostile(['rejoin', addr, '0', '127.0.0.3'])
  t.equal((await rejoin.line()).connected, false, 'a fresh key from the banned address is refused')
  const other = hostile(['rejoin', addr, '0', '127.0.0.4'])
  t.equal((await other.line()).connected, true, 'another address still gets in')

  // protocol garbage from 127.0.0.5 counts too (5 per frame): banned after a few frames
  const junk = hostile(['garbage', addr, '12', '127.0.0.5'])
  await junk.exited
  const s2 = await until('node A to ban the garbage sender', async () => ((await syncInfo()).bans > 1 ? syncInfo() : undefined), 30_000)
  t.ok(s2.malformedFrames >= 5, `malformed frames counted: ${s2.malformedFrames}`)
  t.equal(s2.bans, 2, 'the garbage sender is banned')
  const p2p = await p2pInfo()
  t.ok(p2p.banned.peers >= 2 && p2p.banned.addresses >= 2, `bans shown in node status: ${JSON.stringify(p2p.banned)}`)

  const log = await readFile(envs[0].logFile, 'utf8')
  t.notMatch(log, /API handler failed/, 'no 500 in the log')
  t.match(log, /banning peer.*127\.0\.0\.3/, 'the ban is logged with the peer and its address')
  // the honest nodes still replicate
  const after = createOp(author, 'dns', `${author.address}/after`, { ok: true }, { ms: Date.now(), n: 0 })
  await createClient({ socket: envs[1].socket }).post('/v1/state/ops', { ops: [after] })
  await until('the honest write to reach node A', async () => ((await dnsCount(envs[0], author.address)) === 2 ? true : undefined), 30_000)
  t.pass('honest replication goes on')
})

t.test('a stranger\'s opsTo list does not stop a node announcing what it relays', async (t) => {
  // Anti-entropy is out of reach (10 min), so the operations can reach node B only by node A's
  // announcement. A stranger pushing them to A and claiming B has them already would, if believed,
  // leave B without them until then.
  const net = await startNetwork(t, 2, '[state]\nanti_entropy_interval_ms = 600000\n')
  const p2p = (fe: FormEnv) => createClient({ socket: fe.socket }).get<{ peerId: string; multiaddrs: string[] }>('/v1/net/p2p')
  const [a, b] = await Promise.all(net.envs.map(p2p))
  const liar = hostile(['opsto', a.multiaddrs[0], '20', '127.0.0.6', [a.peerId, b.peerId].join(',')])
  t.teardown(() => void liar.child.kill())
  const author = (await Promise.race([liar.line(), liar.exited.then(() => Promise.reject(new Error('the hostile peer exited before it sent the frame')))])).author as string
  await until('node A to store the 20 valid operations', async () => ((await dnsCount(net.envs[0], author)) === 20 ? true : undefined), 30_000)
  liar.child.stdin!.end()
  await liar.exited
  await until('node B to have them', async () => ((await dnsCount(net.envs[1], author)) === 20 ? true : undefined), 30_000)
  const sync = (await createClient({ socket: net.envs[0].socket }).get<{ announcedOps: number }>('/v1/state/sync'))
  t.ok(sync.announcedOps >= 20, `node A announced them to B (${sync.announcedOps} hashes announced), though the stranger named B`)
})

t.test('per-author quotas on POST /v1/state/ops answer 429 with a clear error', async (t) => {
  const { envs } = await cluster(t, 1, '[state]\nquota_ops_per_minute = 50\n')
  const api = (await createClient({ socket: envs[0].socket }).get<{ api: string[] }>('/v1/node')).api[0]
  const remote = createClient({ url: `http://${api}` })
  const flood = authorFromKeys(generateAuthorKeys())
  const batch = (a: typeof flood, from: number, n: number) => Array.from({ length: n }, (_, i) => createOp(a, 'dns', `${a.address}/q-${from + i}`, {}, { ms: Date.now(), n: 0 }))
  t.equal((await remote.post<{ accepted: number }>('/v1/state/ops', { ops: batch(flood, 0, 40) })).accepted, 40)
  await t.rejects(remote.post('/v1/state/ops', { ops: batch(flood, 40, 20) }), { code: 'STATE_QUOTA', message: /60 operations; the limit is 50 a minute \(\[state\] quota_ops_per_minute\)/, hint: /wait \d+ s/ })
  const other = authorFromKeys(generateAuthorKeys())
  t.equal((await remote.post<{ accepted: number }>('/v1/state/ops', { ops: batch(other, 0, 10) })).accepted, 10, 'another author is not held back')
  t.equal((await createClient({ socket: envs[0].socket }).post<{ accepted: number }>('/v1/state/ops', { ops: batch(flood, 40, 20) })).accepted, 20, "the operator's socket is not metered")
  const info = (await createClient({ socket: envs[0].socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')).services.find((s) => s.name === 'state')!.info
  t.equal(info.quotaRefused, 1, 'the refusal is counted in node status')
})
