import t from 'tap'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { form, startNode, until } from '../helpers/form.js'
import { api, startNetwork } from '../helpers/network.js'

// Tombstones are forgotten after [state] tombstone_horizon_ms (shortened here to 20 s). A node
// stopped for longer still holds the deleted record: were it to sync it back, every node would
// see it again. It must start empty, take the state from its peers, and say why.
const HORIZON_MS = 20_000
const TOML = `[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 3000\ntombstone_horizon_ms = ${HORIZON_MS}\n`

t.test('a node stopped for longer than the tombstone horizon re-syncs from scratch, says so, and resurrects nothing', async (t) => {
  const net = await startNetwork(t, 3, TOML)
  const dev = authorFromKeys(generateAuthorKeys())
  const key = `${dev.address}/www`
  const path = `/v1/state/records/dns/${key}?deleted=true`
  const has = async (i: number) => api(net.envs[i]).get(path).then(() => true, (error: { code?: string }) => (error.code === 'STATE_NOT_FOUND' ? false : Promise.reject(error)))
  t.match(await api(net.envs[0]).post('/v1/state/ops', { ops: [createOp(dev, 'dns', key, { ip: '10.1.0.5' }, { ms: Date.now(), n: 0 })] }), { accepted: 1 })
  await until('the record on all 3 nodes', async () => ((await Promise.all([0, 1, 2].map(has))).every(Boolean) ? true : undefined))

  await net.nodes[2].stop()
  t.match(await api(net.envs[0]).post('/v1/state/ops', { ops: [createOp(dev, 'dns', key, undefined, { ms: Date.now(), n: 0 })] }), { accepted: 1 })
  // the deletion reaches node 2, then both forget it past the horizon
  await until('the tombstone dropped on nodes 1 and 2', async () => (!(await has(0)) && !(await has(1)) ? true : undefined), HORIZON_MS * 4)

  net.nodes[2] = await startNode(net.envs[2])
  const status = await form(net.envs[2], ['node', 'status'])
  t.match(status.stdout, /state: state re-synced from scratch: this node was away .* longer than \[state\] tombstone_horizon_ms/, 'node status says it re-synced')
  t.match(net.nodes[2].output(), /re-synced from scratch/, 'and so does its log')
  const info = await api(net.envs[2]).get<{ storage: { resync?: { message: string } } }>('/v1/state/info')
  t.match(info.storage.resync, { message: /re-synced from scratch/ })
  const cli = await form(net.envs[2], ['state', 'info'])
  t.match(cli.stdout, /records: +\d+ live, \d+ tombstones?\noperations: \d+ stored, .*\n.*\nstate re-synced from scratch/, 'form state info shows sizes and the re-sync')

  await until('node 3 has every node record again', async () => {
    const keys = (await api(net.envs[2]).get<{ records: { key: string }[] }>('/v1/state/records/nodes')).records.map((r) => r.key)
    return net.addresses.every((a) => keys.includes(a)) ? true : undefined
  })
  // a few anti-entropy rounds in both directions
  const rounds = async (i: number) => (await api(net.envs[i]).get<{ syncRounds: number }>('/v1/state/sync')).syncRounds
  const [r0, r2] = [await rounds(0), await rounds(2)]
  await until('anti-entropy rounds after the restart', async () => ((await rounds(0)) >= r0 + 3 && (await rounds(2)) >= r2 + 3 ? true : undefined), 60_000)
  for (const i of [0, 1, 2]) t.notOk(await has(i), `node ${i + 1}: the deleted record stays deleted`)
})
