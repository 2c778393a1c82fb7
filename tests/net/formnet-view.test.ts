import t from 'tap'
import { allocateHost, contains, parseCidr, subnetFromKey } from '../../plugins/net/lib/formnet/ipam.js'
import { developerPeers, formnetView, nodePeers, nodeRoutes, subnetAddressesInUse, type RecordLike } from '../../plugins/net/lib/formnet/peers.js'
import { generateWireGuardKeys } from '../../plugins/net/lib/wireguard/keys.js'

const rec = (key: string, value: unknown, ms = 1, hash = 'aa'): RecordLike => ({ key, value, t: { ms, n: 0 }, hash, author: key.split('/').pop()!, rank: ms })
const [ka, kb, kd, kx] = [0, 1, 2, 3].map(() => generateWireGuardKeys().publicKey)

t.test('instances count up from .2, developers down from the top; both skip what is used', async (t) => {
  const s = subnetFromKey('10.9.0.0_24')
  t.equal(allocateHost(s, [], { fromTop: true }), '10.9.0.254')
  t.equal(allocateHost(s, ['10.9.0.254', '10.9.0.253'], { fromTop: true }), '10.9.0.252')
  t.equal(allocateHost(s, ['10.9.0.2']), '10.9.0.3')
  t.ok(contains(parseCidr('10.9.0.0/24'), '10.9.0.77'))
  t.notOk(contains(parseCidr('10.9.0.0/24'), '10.9.1.1'))
  t.notOk(contains(parseCidr('10.9.0.0/24'), '10.9.0.300'))
})

t.test('with bounds, a claim outside formnet or of another size routes nothing', async (t) => {
  const cidrs = [
    rec('0.0.0.0_0/0xevil', {}, 1), // a default route for everyone
    rec('198.18.0.0_16/0xwide', {}, 1), // a neighbour's worth of subnets
    rec('10.1.0.0_24/0xother', {}, 1), // another network's range
    rec('198.18.7.0_24/0xa', {}, 2),
  ]
  const nodes = ['0xevil', '0xwide', '0xother', '0xa'].map((n, i) => rec(n, { formnet: { publicKey: [kx, kb, kd, ka][i], endpoint: `192.168.1.${i + 1}:51820`, subnet: cidrs[i].key.split('/')[0].replace('_', '/') } }))
  const bounds = { space: parseCidr('198.18.0.0/15'), prefix: 24 }
  const view = formnetView(cidrs, nodes, [], bounds)
  t.same([...view.subnets.entries()], [['0xa', '198.18.7.0/24']])
  t.same(nodeRoutes(view, '0xself'), ['198.18.7.0/24'], 'the only route is the honest node\'s subnet')
  t.same(formnetView(cidrs, nodes, []).subnets.size, 4, 'without bounds every claim counts')
})

t.test('the view keeps what state proves and ignores what a node claims beyond its subnet', async (t) => {
  const cidrs = [
    rec('10.1.0.0_24/0xa', {}, 1),
    rec('10.2.0.0_24/0xb', {}, 2),
    rec('10.1.0.0_24/0xc', {}, 3), // a later claim of A's subnet loses: C holds nothing
  ]
  const nodes = [
    rec('0xa', { formnet: { publicKey: ka, endpoint: '192.168.1.1:51820', subnet: '10.1.0.0/24', address: '10.1.0.1' } }),
    rec('0xb', { formnet: { publicKey: kb, endpoint: '192.168.1.2:51820', subnet: '10.2.0.0/24', address: '10.2.0.1' } }),
    rec('0xc', { formnet: { publicKey: kx, endpoint: '192.168.1.3:51820', subnet: '10.1.0.0/24', address: '10.1.0.1' } }),
    rec('0xe', { formnet: { publicKey: 'not a key', subnet: '10.3.0.0/24' } }),
  ]
  const peers = [
    rec('0xa/0xdev', { publicKey: kd, address: '10.1.0.254' }),
    rec('0xb/0xevil', { publicKey: kx, address: '10.1.0.200' }), // B may not hand out A's addresses
  ]
  const view = formnetView(cidrs, nodes, peers)
  t.same([...view.subnets.entries()], [['0xa', '10.1.0.0/24'], ['0xb', '10.2.0.0/24']])
  t.same(view.nodes.map((n) => n.node), ['0xa', '0xb'], 'C, which lost its claim, routes nothing')
  t.same(view.peers.map((p) => p.owner), ['0xdev'], 'a developer address outside the admitting node\'s subnet is ignored')

  t.same(nodePeers(view, '0xa', 25), [
    { publicKey: kb, endpoint: '192.168.1.2:51820', allowedIps: ['10.2.0.0/24'], persistentKeepalive: 25 },
    { publicKey: kd, allowedIps: ['10.1.0.254/32'] },
  ])
  t.same(developerPeers(view.nodes, 25).map((p) => p.allowedIps), [['10.1.0.0/24'], ['10.2.0.0/24']])
  t.same(nodeRoutes(view, '0xa'), ['10.2.0.0/24', '10.1.0.254/32'], 'A routes B\'s subnet and the developer it admitted')
  t.same(nodeRoutes(view, '0xb'), ['10.1.0.0/24'], 'B reaches that developer through A\'s subnet')
})

t.test("subnetAddressesInUse: the node's peers and the instances it reports hosting, not others' nor deleted ones", async (t) => {
  const node = `0x${'1'.repeat(40)}`
  const other = `0x${'2'.repeat(40)}`
  const owner = `0x${'a'.repeat(40)}`
  const records: Record<string, RecordLike[]> = {
    peers: [rec(`${node}/${owner}`, { address: '10.9.0.2' })],
    instances: [
      rec(`${owner}/web-1/observed/${node}`, { state: 'running', ip: '10.9.0.3' }),
      rec(`${owner}/web-2/observed/${node}`, { state: 'deleted', ip: '10.9.0.4' }),
      rec(`${owner}/web-3/observed/${other}`, { state: 'running', ip: '10.9.0.5' }),
      rec(`${owner}/web-4/desired`, { state: 'running', ip: '10.9.0.6' }),
      rec(`${owner}/web-5/observed/${node}/extra`, { state: 'running', ip: '10.9.0.7' }),
    ],
  }
  const store = { all: async (c: string, prefix = '') => (records[c] ?? []).filter((r) => r.key.startsWith(prefix)) }
  t.same((await subnetAddressesInUse(store, node)).sort(), ['10.9.0.2', '10.9.0.3'])
})
