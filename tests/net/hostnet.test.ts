import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { conflictsWith, hostConflictError, readHostNetworks, routable, type HostNetwork } from '../../plugins/net/lib/formnet/hostnet.js'
import { parseCidr } from '../../plugins/net/lib/formnet/ipam.js'
import { developerPlan } from '../../plugins/net/lib/formnet/developer.js'

const net = (cidr: string, what: string): HostNetwork => ({ cidr: parseCidr(cidr), what })
const host = [net('10.1.0.0/24', 'address 10.1.0.2/24 on eth1'), net('10.1.1.53/32', 'resolver 10.1.1.53 (/etc/resolv.conf)'), net('172.17.0.0/16', 'route 172.17.0.0/16 dev docker0')]

t.test('a range conflicts with every host network it overlaps, in either direction', async (t) => {
  t.same(conflictsWith(host, parseCidr('10.0.0.0/8')).map((h) => h.what), [host[0].what, host[1].what], 'a range around the host\'s networks')
  t.same(conflictsWith(host, parseCidr('10.1.1.0/24')).map((h) => h.what), [host[1].what], 'a subnet holding the resolver')
  t.same(conflictsWith(host, parseCidr('172.17.5.0/24')).map((h) => h.what), [host[2].what], 'a subnet inside a host route')
  t.same(conflictsWith(host, parseCidr('198.18.0.0/15')), [])
})

t.test('routable keeps what overlaps nothing and says why it left out the rest', async (t) => {
  const r = routable(host, ['198.18.4.0/24', '10.1.1.0/24', '198.18.4.0/24', 'nonsense'])
  t.same(r.routes, ['198.18.4.0/24'])
  t.same([...r.skipped], [['10.1.1.0/24', [host[1].what]], ['nonsense', ['not a CIDR']]])
})

t.test('the conflict error names what is in the way and the setting to change', async (t) => {
  const e = hostConflictError('formnet', parseCidr('10.0.0.0/8'), host)
  t.equal(e.code, 'FORMNET_CONFLICT')
  t.match(e.message, 'formnet 10.0.0.0/8 overlaps networks this host already uses: address 10.1.0.2/24 on eth1; resolver 10.1.1.53 (/etc/resolv.conf)')
  t.match(e.hint, /\[net\] formnet_cidr/)
  const many = Array.from({ length: 8 }, (_, i) => net(`10.${i}.0.0/16`, `route 10.${i}.0.0/16 dev eth0`))
  t.match(hostConflictError('formnet', parseCidr('10.0.0.0/8'), many).message, /route 10\.4\.0\.0\/16 dev eth0; and 3 more$/, 'at most five are listed')
})

t.test('the host\'s networks: resolvers from the files given, no default route, excluded links left out', async (t) => {
  const dir = t.testdir()
  const resolv = join(dir, 'resolv.conf')
  await writeFile(resolv, '# comment\nnameserver 10.200.0.53\nnameserver fe80::1\nsearch example\n')
  const found = await readHostNetworks([], [resolv, join(dir, 'missing')])
  t.ok(found.some((h) => h.what === `resolver 10.200.0.53 (${resolv})` && h.cidr.prefix === 32), 'an IPv4 resolver, as a /32')
  t.notOk(found.some((h) => h.what.includes('fe80')), 'IPv6 resolvers are not formnet\'s concern')
  t.notOk(found.some((h) => h.cidr.prefix === 0), 'the default route is no conflict')
  t.ok(found.some((h) => h.what.startsWith('address 127.0.0.1/8 on lo')), 'addresses are read (ip -j addr)')
  t.notOk((await readHostNetworks(['lo'], [])).some((h) => h.what.includes(' lo')), 'an excluded link contributes nothing')
})

t.test('a developer keeps only node subnets inside formnet, and routes none over its own networks', async (t) => {
  const space = parseCidr('198.18.0.0/15')
  const mine = [net('198.18.9.0/24', 'route 198.18.9.0/24 dev tun0')]
  const plan = developerPlan(
    space,
    [
      { publicKey: 'a', endpoint: '192.168.1.1:51820', allowedIps: ['198.18.1.0/24'] },
      { publicKey: 'evil', endpoint: '192.168.1.2:51820', allowedIps: ['0.0.0.0/0', '10.0.0.0/8', '198.18.2.0/24'] }, // a hostile node's list
      { publicKey: 'b', endpoint: '192.168.1.3:51820', allowedIps: ['198.18.9.0/24'] },
    ],
    mine,
  )
  t.same(plan.desired.map((p) => p.allowedIps), [['198.18.1.0/24'], ['198.18.2.0/24'], ['198.18.9.0/24']], 'allowed IPs outside formnet are dropped from the peers')
  t.same(plan.routes, ['198.18.1.0/24', '198.18.2.0/24'], 'no route for 0.0.0.0/0 or 10.0.0.0/8, nor for a subnet this machine already routes')
  t.same([...plan.skipped], [['198.18.9.0/24', ['route 198.18.9.0/24 dev tun0']]])
})

t.test("a developer's .fog resolver is the node whose routed subnet holds the developer's address", async (t) => {
  const { fogResolver } = await import('../../plugins/net/lib/formnet/developer.js')
  t.equal(fogResolver('198.18.3.200', ['198.18.1.0/24', '198.18.3.0/24']), '198.18.3.1')
  t.equal(fogResolver('198.18.3.200', ['198.18.1.0/24']), undefined, 'not before that route is known')
  t.equal(fogResolver('198.18.3.200', ['198.18.3.200/32']), undefined, 'never the developer itself')
})
