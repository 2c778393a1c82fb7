import t from 'tap'
import { createClient } from '../../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { admit, joinEnv, makeEnv, startNode, until, type FormEnv, type NodeProcess } from '../helpers/form.js'

interface P2PInfo {
  peerId: string
  multiaddrs: string[]
  peers: { peerId: string }[]
}

const p2p = (fe: FormEnv) => createClient({ socket: fe.socket }).get<P2PInfo>('/v1/net/p2p')
const dnsKeys = async (fe: FormEnv) => (await createClient({ socket: fe.socket }).get<{ records: { key: string }[] }>('/v1/state/records/dns')).records.map((r) => r.key).sort()

t.test('5 nodes bootstrapped from the first find each other, replicate, and a restarted node catches up', async (t) => {
  const envs: FormEnv[] = []
  const nodes: NodeProcess[] = []
  t.teardown(async () => {
    for (const n of nodes) await n.stop('SIGKILL')
  })
  const fast = { FORM_NODE_READY_TIMEOUT_MS: '60000' }
  envs.push(await makeEnv(t, fast))
  nodes.push(await startNode(envs[0]))
  const boot = (await p2p(envs[0])).multiaddrs[0]
  const network = await joinEnv(envs[0])
  for (let i = 1; i < 5; i++) {
    envs.push(await makeEnv(t, { ...fast, ...network, FORM_BOOTSTRAP: boot }))
    nodes.push(await startNode(envs[i]))
  }
  // node records count only for admitted members: the first node (genesis admin) admits the others
  await admit(envs[0], ...envs.slice(1))
  const ids = await Promise.all(envs.map(async (fe) => (await p2p(fe)).peerId))

  // Only the first node was given; the others are found through the DHT.
  await until('a full mesh', async () => {
    const views = await Promise.all(envs.map(p2p))
    return views.every((v, i) => ids.filter((id, j) => j !== i).every((id) => v.peers.some((p) => p.peerId === id))) ? true : undefined
  })
  t.pass('every node is connected to every other node')

  // each node's record (bound to its peer id) reaches every node
  await until('node records everywhere', async () => {
    for (const fe of envs) {
      const nodesSeen = await createClient({ socket: fe.socket }).get<{ records: { value: { peerId?: string } }[] }>('/v1/state/records/nodes')
      if (ids.some((id) => !nodesSeen.records.some((r) => r.value.peerId === id))) return undefined
    }
    return true
  })
  t.pass('node records with their peer ids replicated to all 5')

  // a write on any node is present on all
  const dev = authorFromKeys(generateAuthorKeys())
  const write = async (fe: FormEnv, name: string) => {
    const op = createOp(dev, 'dns', `${dev.address}/${name}`, { name }, { ms: Date.now(), n: 0 })
    const r = await createClient({ socket: fe.socket }).post<{ accepted: number }>('/v1/state/ops', { ops: [op] })
    t.equal(r.accepted, 1)
  }
  await write(envs[3], 'from-node-3')
  await write(envs[1], 'from-node-1')
  const expected = [`${dev.address}/from-node-1`, `${dev.address}/from-node-3`]
  await until('the writes everywhere', async () => ((await Promise.all(envs.map(dnsKeys))).every((k) => JSON.stringify(k) === JSON.stringify(expected)) ? true : undefined))
  t.pass('writes on two nodes are present on all five')

  // node 4 goes away; others write; it comes back and catches up through anti-entropy
  await nodes[4].stop('SIGKILL')
  for (let i = 0; i < 20; i++) await write(envs[i % 3], `while-away-${i}`)
  const all = await until('the others to agree on 22 records', async () => {
    const views = await Promise.all(envs.slice(0, 4).map(dnsKeys))
    return views.every((v) => v.length === 22 && JSON.stringify(v) === JSON.stringify(views[0])) ? views[0] : undefined
  })
  t.notOk((await dnsKeys(envs[4]).catch(() => undefined)) !== undefined, 'node 4 is really down')
  // restarted without any bootstrap peer: it rejoins from its persisted peer store
  envs[4] = { ...envs[4], env: { ...envs[4].env, FORM_BOOTSTRAP: '' } }
  nodes[4] = await startNode(envs[4])
  await until('node 4 to catch up', async () => (JSON.stringify(await dnsKeys(envs[4])) === JSON.stringify(all) ? true : undefined))
  t.pass('the restarted node has every write made while it was away')
  const p2pAfter = await p2p(envs[4])
  t.equal(p2pAfter.peerId, ids[4], 'its peer id survived the restart')
})
