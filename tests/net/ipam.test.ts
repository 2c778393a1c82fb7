import t from 'tap'
import fc from 'fast-check'
import { allocateHost, chooseSubnet, nodeAddress, overlaps, parseCidr, parseRoute, subnetFromKey, subnetOf, winners, within, type Claim } from '../../plugins/net/lib/formnet/ipam.js'

t.test('CIDR parsing and errors', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { base: 10 * 2 ** 24, prefix: 8 })
  t.throws(() => parseCidr('10.0.0.1/8'), { code: 'FORMNET_BAD_CIDR', hint: /10\.0\.0\.0\/8/ })
  t.throws(() => parseCidr('300.0.0.0/8'), { code: 'FORMNET_BAD_CIDR' })
  t.throws(() => parseCidr('10.0.0.0'), { code: 'FORMNET_BAD_CIDR' })
})

t.test('the claimant admitted first wins, whatever the timestamps; the loser chooses another subnet', async (t) => {
  const space = parseCidr('10.0.0.0/8')
  const a: Claim = { subnet: '10.5.0.0_24', node: '0xa', rank: 1, t: { ms: 100, n: 0 }, hash: 'ff' }
  const b: Claim = { subnet: '10.5.0.0_24', node: '0xb', rank: 2, t: { ms: 0, n: 0 }, hash: '01' }
  t.equal(winners([a, b]).get('10.5.0.0_24')?.node, '0xa', 'a back-dated claim by a later member loses')
  t.equal(winners([b, a]).get('10.5.0.0_24')?.node, '0xa', 'in any order')
  t.equal(subnetOf('0xb', [a, b]), undefined)
  const next = chooseSubnet('0xb', [a, b], space, 24)
  t.not(next, '10.5.0.0_24')
  t.equal(subnetOf('0xb', [a, b, { subnet: next, node: '0xb', rank: 2, t: { ms: 200, n: 0 }, hash: 'aa' }]), next)
  const tie: Claim = { ...b, node: '0x9', rank: 1 }
  t.equal(winners([a, tie]).get('10.5.0.0_24')?.node, '0x9', 'equal ranks (an open store): the smaller address')
})

t.test('hosts: .1 is the node, then the lowest free address; full subnets are an error', async (t) => {
  const s = subnetFromKey('10.5.0.0_30')
  t.equal(nodeAddress(s), '10.5.0.1')
  t.equal(allocateHost(s, []), '10.5.0.2')
  t.throws(() => allocateHost(s, ['10.5.0.2']), { code: 'FORMNET_SUBNET_FULL' })
  const big = subnetFromKey('10.5.0.0_24')
  t.equal(allocateHost(big, ['10.5.0.2', '10.5.0.4']), '10.5.0.3')
})

t.test('ranges: overlap, containment, host routes as /32', async (t) => {
  t.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.1.2.0/24')))
  t.ok(overlaps(parseCidr('10.1.2.0/24'), parseCidr('10.0.0.0/8')))
  t.notOk(overlaps(parseCidr('10.1.2.0/24'), parseCidr('10.1.3.0/24')))
  t.ok(within(parseCidr('198.18.0.0/15'), parseCidr('198.19.255.0/24')))
  t.notOk(within(parseCidr('198.18.0.0/15'), parseCidr('0.0.0.0/0')), 'a wider range is not inside')
  t.same(parseRoute('10.1.2.250'), { base: parseCidr('10.1.2.250/32').base, prefix: 32 })
  t.equal(parseRoute('default'), undefined)
})

t.test('a node claims only a subnet the host does not use; none left is a conflict, not "full"', async (t) => {
  const space = parseCidr('10.1.0.0/22')
  const hostUses = [parseCidr('10.1.0.0/24'), parseCidr('10.1.1.53/32'), parseCidr('10.1.2.0/24')]
  const free = (c: ReturnType<typeof parseCidr>) => !hostUses.some((h) => overlaps(h, c))
  for (const node of ['0xa', '0xb', '0xc', '0xd']) t.equal(chooseSubnet(node, [], space, 24, free), '10.1.3.0_24', `${node} lands on the one free subnet`)
  const taken: Claim = { subnet: '10.1.3.0_24', node: '0xz', rank: 1, t: { ms: 1, n: 0 }, hash: 'aa' }
  t.throws(() => chooseSubnet('0xa', [taken], space, 24, free), { code: 'FORMNET_CONFLICT' })
})

t.test('formnet full is reported', async (t) => {
  const space = parseCidr('10.0.0.0/23')
  const claims: Claim[] = ['10.0.0.0_24', '10.0.1.0_24'].map((subnet, i) => ({ subnet, node: `0x${i}`, rank: i, t: { ms: 1, n: 0 }, hash: String(i) }))
  t.throws(() => chooseSubnet('0xnew', claims, space, 24), { code: 'FORMNET_FULL' })
})

// Nodes claim concurrently: in each round every node without a subnet claims one from what its own
// replica has seen so far; claims reach the replicas in random order. Whatever the interleaving,
// every replica ends with the same view and no two nodes hold the same subnet.
t.test('property: concurrent claims converge to unique subnets, identically on every replica', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 24 }), fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: 3 }), (nodes, seed, tightness) => {
      // a small formnet forces collisions: 5-6 bits of subnets for up to 24 nodes
      const space = parseCidr(`10.0.0.0/${19 - tightness}`)
      const ids = Array.from({ length: nodes }, (_, i) => `0x${(i * 7919 + seed).toString(16)}`)
      const replicas = ids.map(() => new Map<string, Claim>())
      let rand = seed || 1
      const next = () => (rand = (rand * 1103515245 + 12345) % 2 ** 31)
      let clock = 0
      for (let round = 0; round < 50; round++) {
        const claims: Claim[] = []
        ids.forEach((node, i) => {
          const view = [...replicas[i].values()]
          if (subnetOf(node, view)) return
          claims.push({ subnet: chooseSubnet(node, view, space, 24), node, rank: (i * 31 + seed) % nodes, t: { ms: clock + (next() % 3), n: 0 }, hash: (next() >>> 0).toString(16).padStart(8, '0') + node })
        })
        clock += 10
        if (claims.length === 0) break
        // deliver every claim to every replica, in a random order per replica
        for (const r of replicas) {
          const order = [...claims].sort(() => (next() % 2 ? 1 : -1))
          for (const c of order) r.set(`${c.subnet}/${c.node}`, c)
        }
      }
      const views = replicas.map((r) => JSON.stringify([...winners(r.values()).entries()].sort()))
      if (!views.every((v) => v === views[0])) return false
      const held = ids.map((node) => subnetOf(node, replicas[0].values()))
      return held.every(Boolean) && new Set(held).size === ids.length
    }),
    { numRuns: 300 },
  )
})
