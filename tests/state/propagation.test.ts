import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createClient } from '../../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, type Op } from '../../plugins/state/lib/op.js'
import { FormnetLab } from '../helpers/formnet-lab.js'
import { admit, joinEnv, makeEnv, startNode, until, type FormEnv } from '../helpers/form.js'
import { netnsUnavailable } from '../helpers/netns.js'

interface SyncStats {
  deliveredOps: number
  syncDeliveredOps: number
  duplicateOps: number
  fetchedOps: number
  servedOps: number
  announcedOps: number
  peers: string[]
}

const author = authorFromKeys(generateAuthorKeys())
let written = 0
const ops = (n: number): Op[] => Array.from({ length: n }, () => createOp(author, 'dns', `${author.address}/p${written}`, { i: written++ }, { ms: Date.now(), n: 0 }))
const syncStats = (fe: FormEnv) => createClient({ socket: fe.socket }).get<SyncStats>('/v1/state/sync')
const hasAll = async (fe: FormEnv, written: Op[]) => {
  const { records } = await createClient({ socket: fe.socket }).get<{ records: { key: string }[] }>(`/v1/state/records/dns?prefix=${author.address}/&limit=10000`)
  const keys = new Set(records.map((r) => r.key))
  return written.every((o) => keys.has(o.k))
}

t.test("in a mesh each node receives each new operation about once, not once per peer, and none that push brought is announced: the author's node named every peer", async (t) => {
  const envs = [await makeEnv(t)]
  const nodes = [await startNode(envs[0])]
  t.teardown(() => nodes[0].stop('SIGKILL'))
  const boot = (await createClient({ socket: envs[0].socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  for (let i = 1; i < 4; i++) {
    const fe = await makeEnv(t, { FORM_BOOTSTRAP: boot, ...(await joinEnv(envs[0])) })
    const node = await startNode(fe)
    t.teardown(() => node.stop('SIGKILL'))
    envs.push(fe)
    nodes.push(node)
  }
  await admit(envs[0], ...envs.slice(1))
  await until('a full mesh of members', async () => {
    const seen = await Promise.all(envs.map(async (fe) => [(await createClient({ socket: fe.socket }).get<{ records: unknown[] }>('/v1/state/records/nodes')).records.length, (await syncStats(fe)).peers.length]))
    return seen.every(([records, peers]) => records === 4 && peers === 3) ? true : undefined
  }, 60_000)
  const before = await Promise.all(envs.map(syncStats))
  const batch = ops(400)
  for (let i = 0; i < batch.length; i += 100) await createClient({ socket: envs[0].socket }).post('/v1/state/ops', { ops: batch.slice(i, i + 100) })
  for (const fe of envs) await until('every node to have the 400', async () => ((await hasAll(fe, batch)) ? true : undefined), 60_000)
  // announcements still in their grace are fetched or dropped within a few seconds
  await new Promise((r) => setTimeout(r, 3000))
  const after = await Promise.all(envs.map(syncStats))
  for (let i = 1; i < envs.length; i++) {
    const delta = (k: keyof SyncStats) => (after[i][k] as number) - (before[i][k] as number)
    const delivered = delta('deliveredOps')
    t.ok(delivered >= 400 && delivered <= 1.5 * 400, `node ${i + 1} received ${delivered} copies of the 400 operations (${delta('fetchedOps')} fetched after announcements, ${delta('syncDeliveredOps')} by anti-entropy; flooding: 3 a node here, 7 at 8 nodes)`)
  }
  const announced = after.reduce((sum, s, i) => sum + s.announcedOps - before[i].announcedOps, 0)
  const bySync = after.reduce((sum, s, i) => sum + s.syncDeliveredOps - before[i].syncDeliveredOps, 0)
  // The author's node pushed to every member and said so (opsTo): a relay announcing to peers that
  // have it cost every node its CPU for nothing (the next test is a node the author's node does not
  // reach). An operation an anti-entropy round delivers before its push (CI saw 1 in 400) comes with
  // no such list, so its relay announces it to the 2 peers other than its source.
  t.ok(announced <= bySync * (envs.length - 2), `the nodes announced only what anti-entropy brought them before push (${announced} hashes for ${bySync} operations), nothing that push brought`)
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')))
})

const missing = netnsUnavailable(['iptables', 'wireguard-go'])
t.test('a node cut off from the author node gets new operations through a peer, by announcement and fetch', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const lab = new FormnetLab(t)
  // anti-entropy only on connect: what arrives later comes by push, announcement and fetch
  const config = { state: ['anti_entropy_interval_ms = 600000'] }
  const [a, b, c] = [await lab.addNode({ config }), await lab.addNode({ config }), await lab.addNode({ config })]
  await lab.until(async () => (await Promise.all([a, b, c].map(async (n) => (await createClient({ socket: n.env.socket }).get<{ records: unknown[] }>('/v1/state/records/nodes')).records.length))).every((n) => n === 3), 60_000)
  const peerId = async (fe: FormEnv) => (await createClient({ socket: fe.socket }).get<{ peerId: string }>('/v1/net/p2p')).peerId
  const [aId, bId] = [await peerId(a.env), await peerId(b.env)]
  // c can no longer reach a (its TCP connections are reset), only b
  for (const chain of ['INPUT -s', 'OUTPUT -d']) {
    const [name, flag] = chain.split(' ')
    const r = spawnSync('ip', ['netns', 'exec', c.ns, 'iptables', '-A', name, flag, a.ip, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'], { encoding: 'utf8' })
    t.equal(r.status, 0, `iptables ${name} in c's namespace ${r.stderr}`)
  }
  await lab.until(async () => {
    const peers = (await syncStats(c.env)).peers
    return !peers.includes(aId) && peers.includes(bId)
  }, 90_000)
  t.pass('c is connected to b and not to a')
  const before = await syncStats(c.env)
  const batch = ops(50)
  await createClient({ socket: a.env.socket }).post('/v1/state/ops', { ops: batch })
  await until('c to have the 50 operations written on a', async () => ((await hasAll(c.env, batch)) ? true : undefined), 30_000)
  const after = await syncStats(c.env)
  t.notOk(after.peers.includes(aId), 'c was never connected to a meanwhile')
  t.ok(after.fetchedOps - before.fetchedOps >= 50, `c fetched the ${after.fetchedOps - before.fetchedOps} operations b announced`)
  t.ok(after.deliveredOps - before.deliveredOps <= 1.5 * 50, `c received ${after.deliveredOps - before.deliveredOps} copies of the 50`)
})
