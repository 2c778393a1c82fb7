// Soak, bounded in time: 20 hostile peers (8 connections holding half-sent 4 MiB frames, 6 sending
// protocol garbage, 6 sending out-of-range timestamps) and HTTP abuse (text/plain and oversized
// posts) for 2 minutes, while honest writes go on at three nodes. The honest nodes converge, every
// acknowledged write is on every node, and node A's memory and connections stay within their limits.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { fileURLToPath } from 'node:url'
import { createClient } from '../../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { makeEnv, startNode, until, type FormEnv } from '../helpers/form.js'
import { MiB, rssMiB, underAttackBound } from './fixtures/memory.js'

const HOSTILE = fileURLToPath(new URL('./fixtures/hostile-peer.ts', import.meta.url))
const SOAK_MS = 120_000


function post(api: string, path: string, headers: Record<string, string | number>, body: Buffer): Promise<number> {
  const [host, port] = api.split(':')
  return new Promise((resolve) => {
    const req = request({ host, port: Number(port), method: 'POST', path, headers, agent: false }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', () => resolve(0))
    req.end(body)
  })
}

t.test('20 hostile peers for 2 minutes while honest writes go on', async (t) => {
  const a = await makeEnv(t)
  const nodeA = await startNode(a, ['--api-listen', '127.0.0.1:0'])
  t.teardown(() => nodeA.stop('SIGKILL'))
  const addr = (await createClient({ socket: a.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const api = (await createClient({ socket: a.socket }).get<{ api: string[] }>('/v1/node')).api[0]
  const envs: FormEnv[] = [a]
  for (let i = 0; i < 2; i++) {
    const fe = await makeEnv(t, { FORM_BOOTSTRAP: addr })
    const node = await startNode(fe)
    t.teardown(() => node.stop('SIGKILL'))
    envs.push(fe)
  }
  const pid = nodeA.child.pid!
  const baseline = await rssMiB(pid)

  const children: ChildProcess[] = []
  t.teardown(() => children.forEach((c) => c.kill('SIGKILL')))
  const run = (args: string[]) => {
    const c = spawn(process.execPath, ['--import', 'tsx', HOSTILE, ...args], { stdio: ['pipe', 'ignore', 'ignore'] })
    children.push(c)
    return c
  }
  const rounds = String(Math.round(SOAK_MS / 200))
  const hold = run(['hold', addr, '8'])
  for (let i = 0; i < 6; i++) run(['garbage', addr, rounds, `127.0.2.${i + 1}`])
  for (let i = 0; i < 6; i++) run(['timestamps', addr, rounds, `127.0.3.${i + 1}`])

  const author = authorFromKeys(generateAuthorKeys())
  const acknowledged: string[] = []
  let failedWrites = 0
  let peakRss = 0
  let peakConnections = 0
  let peakBuffered = 0
  const statuses = new Map<number, number>()
  const end = Date.now() + SOAK_MS
  let n = 0
  while (Date.now() < end) {
    const key = `${author.address}/soak-${n}`
    const op = createOp(author, 'dns', key, { n }, { ms: Date.now(), n: 0 })
    try {
      const r = await createClient({ socket: envs[n % 3].socket, timeoutMs: 10_000 }).post<{ accepted: number }>('/v1/state/ops', { ops: [op] })
      if (r.accepted === 1) acknowledged.push(key)
    } catch {
      failedWrites++
    }
    n++
    // HTTP abuse beside the honest writes
    const abuse = [await post(api, '/v1/state/ops', { 'content-type': 'text/plain' }, Buffer.from('{"ops":[]}'))]
    if (n % 5 === 0) abuse.push(await post(api, '/v1/state/ops', { 'content-type': 'application/json' }, Buffer.alloc(17 * MiB, 0x20)))
    for (const s of abuse) statuses.set(s, (statuses.get(s) ?? 0) + 1)
    if (n % 5 === 0) {
      peakRss = Math.max(peakRss, await rssMiB(pid))
      const p2p = (await createClient({ socket: a.socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')).services.find((s) => s.name === 'p2p')!.info
      peakConnections = Math.max(peakConnections, p2p.connections)
      peakBuffered = Math.max(peakBuffered, p2p.bufferedBytes)
    }
    await new Promise((r) => setTimeout(r, 300))
  }
  hold.stdin!.end()
  for (const c of children) c.kill('SIGTERM')

  t.ok(acknowledged.length >= 50, `${acknowledged.length} honest writes acknowledged (${failedWrites} failed)`)
  for (const fe of envs) {
    await until(
      'every acknowledged write on every node',
      async () => {
        const { records } = await createClient({ socket: fe.socket }).get<{ records: { key: string }[] }>(`/v1/state/records/dns?prefix=${author.address}/&limit=10000`)
        const have = new Set(records.map((r) => r.key))
        return acknowledged.every((k) => have.has(k)) ? true : undefined
      },
      30_000,
    )
  }
  t.pass('the honest nodes converged on every acknowledged write')
  t.same([...statuses.keys()].sort(), [413, 415], `HTTP abuse answered 415 and 413 only: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.ok(peakRss < underAttackBound(baseline), `node A's RSS peaked at ${peakRss.toFixed(0)} MiB (baseline ${baseline.toFixed(0)}, bound ${underAttackBound(baseline).toFixed(0)})`)
  t.ok(peakConnections <= 64 + 4, `node A's open connections peaked at ${peakConnections} (max_connections 64)`)
  t.ok(peakBuffered <= 128 * MiB, `frame bytes held peaked at ${(peakBuffered / MiB).toFixed(0)} MiB (max_buffered_bytes 128 MiB)`)
  const sync = (await createClient({ socket: a.socket }).get<{ services: { name: string; info: any }[] }>('/v1/node')).services.find((s) => s.name === 'sync')!.info
  t.ok(sync.bans >= 6, `node A banned ${sync.bans} hostile peers`)
  const log = await readFile(a.logFile, 'utf8')
  t.notMatch(log, /API handler failed/, 'no 500 on node A')
})
