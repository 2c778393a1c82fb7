import t from 'tap'
import type { ApiHandler, ApiRequest } from '../../core/daemon/router.js'
import { FormError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { HostNetwork } from '../../plugins/net/lib/formnet/hostnet.js'
import { contains, parseCidr } from '../../plugins/net/lib/formnet/ipam.js'
import { formnetView, type RecordLike } from '../../plugins/net/lib/formnet/peers.js'
import type { DeviceOptions, WireGuardDevice } from '../../plugins/net/lib/wireguard/device.js'
import type { DeviceChange, DeviceState } from '../../plugins/net/lib/wireguard/uapi.js'
import { generateWireGuardKeys } from '../../plugins/net/lib/wireguard/keys.js'
import { serveFormnetApi } from '../../plugins/net/service/formnet/api.js'
import { claimSubnet } from '../../plugins/net/service/formnet/claim.js'
import { openFormnetDevice } from '../../plugins/net/service/formnet/device.js'
import { FORMNET_MTU, FormnetReconciler } from '../../plugins/net/service/formnet/reconciler.js'

const warnings: string[] = []
const log: Logger = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error() {}, child: () => log }
const ME = '0xme'
const bounds = { space: parseCidr('198.18.0.0/23'), prefix: 24 }
const config = { formnet_cidr: '198.18.0.0/23', formnet_subnet_prefix: 24, formnet_keepalive_s: 25 }
const host = (cidr: string): HostNetwork => ({ cidr: parseCidr(cidr), what: `route ${cidr} dev eth0` })

/** State as formnet sees it: records by collection, every writer a member ranked by first write. */
function fakeState() {
  const data = new Map<string, RecordLike[]>()
  let clock = 1
  const all = async (c: string, prefix = '') => (data.get(c) ?? []).filter((r) => r.key.startsWith(prefix))
  const state = {
    data,
    puts: 0,
    all,
    get: async (c: string, key: string) => (data.get(c) ?? []).find((r) => r.key === key),
    put: async (c: string, key: string, value: unknown, author = ME) => {
      state.puts++
      const r: RecordLike = { key, value, t: { ms: clock++, n: 0 }, hash: `h${clock}`, author, rank: author === ME ? 1 : 2 }
      data.set(c, [...(data.get(c) ?? []).filter((x) => x.key !== key), r])
      return r
    },
    delete: async (c: string, key: string) => {
      const r = (data.get(c) ?? []).find((x) => x.key === key)
      data.set(c, (data.get(c) ?? []).filter((x) => x.key !== key))
      return r
    },
    readView: async () => formnetView(await all('cidrs'), await all('nodes'), await all('peers'), bounds),
  }
  return state
}
type FakeState = ReturnType<typeof fakeState>
const asState = (s: FakeState) => s as unknown as Parameters<typeof claimSubnet>[0]['state'] & Parameters<typeof serveFormnetApi>[1]['state']

t.test('claim: a node claims a subnet that overlaps no host network, keeps the one it holds, and refuses one outside the range', async (t) => {
  const s = fakeState()
  const deps = (networks: HostNetwork[]) => ({ state: asState(s), me: ME, config, bounds, readView: s.readView, hostNetworks: async () => networks, log })
  const first = await claimSubnet(deps([host('198.18.0.0/24')]))
  t.equal(first, '198.18.1.0/24', 'the only /24 of the range the host does not use')
  t.same((await s.all('cidrs')).map((r) => r.key), [`198.18.1.0_24/${ME}`], 'claimed in state')
  t.equal(await claimSubnet(deps([])), first, 'held: kept')
  t.equal(s.puts, 1, 'no second claim')
  await t.rejects(claimSubnet(deps([host('198.18.1.0/25')])), { code: 'FORMNET_CONFLICT', message: /this node's formnet subnet 198.18.1.0\/24 overlaps/ }, 'a held subnet the host now uses')

  const busy = fakeState()
  await t.rejects(claimSubnet({ ...deps([host('198.18.0.0/23')]), state: asState(busy), readView: busy.readView }), { code: 'FORMNET_CONFLICT', message: /^formnet 198.18.0.0\/23 overlaps/ }, 'no subnet is free of host networks')

  const moved = fakeState()
  await moved.put('cidrs', `10.1.0.0_24/${ME}`, {})
  await t.rejects(claimSubnet({ ...deps([]), state: asState(moved), readView: moved.readView }), { code: 'FORMNET_RANGE_CHANGED' }, 'a subnet won under another formnet_cidr')
})

function fakeDevice(peers: DeviceState['peers'] = []) {
  const sets: DeviceChange[] = []
  const device: WireGuardDevice & { sets: DeviceChange[] } = {
    name: 'fn0',
    driver: 'userspace',
    sets,
    get: async () => ({ listenPort: 51820, peers }),
    set: async (c) => void sets.push(c),
    close: async () => {},
  }
  return device
}

function reconcilerFor(s: FakeState, subnet: string, o: { device?: WireGuardDevice; hostNetworks?: HostNetwork[] } = {}) {
  const calls = { published: 0, addresses: [] as string[], routes: [] as string[][], degraded: [] as string[], recovered: 0, views: 0 }
  const reconciler = new FormnetReconciler(
    {
      state: asState(s),
      me: ME,
      config,
      bounds,
      readView: async () => (calls.views++, s.readView()),
      hostNetworks: async () => o.hostNetworks ?? [],
      claim: async () => 'unused',
      publishRecord: async () => void calls.published++,
      device: () => o.device,
      health: { degraded: (_p, why) => void calls.degraded.push(why), recovered: () => void calls.recovered++ },
      signal: new AbortController().signal,
      log,
      ip: { setAddress: async (_i, cidr, mtu) => void calls.addresses.push(`${cidr} mtu ${mtu}`), syncRoutes: async (_i, routes) => (calls.routes.push(routes), { added: routes, removed: [] }) },
    },
    subnet,
  )
  return { reconciler, calls }
}

t.test('reconciler: device peers and routes follow the view; a route over a host network is left out', async (t) => {
  const s = fakeState()
  const [kb, kdev, kstale] = [0, 1, 2].map(() => generateWireGuardKeys().publicKey)
  await s.put('cidrs', `198.18.0.0_24/${ME}`, {})
  await s.put('cidrs', '198.18.1.0_24/0xb', {}, '0xb')
  await s.put('nodes', '0xb', { formnet: { publicKey: kb, endpoint: '192.0.2.2:51820', subnet: '198.18.1.0/24', address: '198.18.1.1' } }, '0xb')
  await s.put('peers', `${ME}/0xdev`, { publicKey: kdev, address: '198.18.0.254' })
  const device = fakeDevice([{ publicKey: kstale, allowedIps: ['198.18.9.0/24'], lastHandshake: 0, rxBytes: 0, txBytes: 0 }])
  const { reconciler, calls } = reconcilerFor(s, '198.18.0.0/24', { device, hostNetworks: [host('198.18.1.128/25')] })
  await reconciler.request()
  t.same(calls.degraded, [])
  t.equal(calls.recovered, 1)
  t.equal(device.sets.length, 1)
  const change = device.sets[0].peers ?? []
  t.same(change.filter((c) => c.remove).map((c) => c.publicKey), [kstale], 'a peer no longer in state is removed')
  t.same(change.filter((c) => !c.remove).map((c) => [c.publicKey, c.allowedIps]).sort(), [[kb, ['198.18.1.0/24']], [kdev, ['198.18.0.254/32']]].sort(), 'the other node and the developer are peers')
  t.same(calls.routes, [['198.18.0.254/32']], "the other node's subnet overlaps a host route: not routed")
  t.same([...reconciler.skipped.keys()], ['198.18.1.0/24'])
  t.equal(calls.published, 0, 'the subnet did not move')
})

t.test('reconciler: a node whose subnet was taken moves to the one it holds now; requests during a run coalesce into one more', async (t) => {
  const s = fakeState()
  await s.put('cidrs', `198.18.1.0_24/${ME}`, {})
  const { reconciler, calls } = reconcilerFor(s, '198.18.0.0/24', { device: fakeDevice() })
  const first = reconciler.request()
  const second = reconciler.request()
  const third = reconciler.request()
  t.equal(second, first, 'the run under way is returned')
  t.equal(third, first)
  await first
  t.equal(calls.views, 2, 'three requests: the run and exactly one more')
  t.equal(reconciler.subnet, '198.18.1.0/24')
  t.equal(reconciler.address(), '198.18.1.1')
  t.equal(calls.published, 1, 'the record is published again')
  t.same(calls.addresses, [`198.18.1.1/32 mtu ${FORMNET_MTU}`], 'the interface moves to the new address')

  const failing = reconcilerFor(s, '198.18.1.0/24')
  s.readView = async () => Promise.reject(new Error('store closed'))
  await failing.reconciler.request()
  t.equal(failing.reconciler.lastError, 'store closed')
  t.same(failing.calls.degraded, ['formnet reconciliation failed: store closed'])
})

t.test('device: off opens nothing; auto runs without WireGuard where it cannot; on refuses to; each up sets key, port and address', async (t) => {
  const base = { formnet_interface: 'fn0', formnet_driver: 'auto' as const, formnet_port: 51820 }
  let opened = 0
  const o = (formnet: string, open: (options: DeviceOptions) => Promise<WireGuardDevice>) => ({ config: { ...base, formnet }, pidFile: '/nonexistent', privateKey: 'PRIV', address: () => '198.18.0.1', onRestart: () => void restarts++, log, open, setAddress: async (i: string, cidr: string) => void assigned.push(`${i} ${cidr}`) })
  let restarts = 0
  const assigned: string[] = []
  t.same(await openFormnetDevice(o('off', async () => (opened++, fakeDevice()))), { disabledReason: 'formnet = "off" in the operator config' })
  t.equal(opened, 0)
  const noWireguard = async () => Promise.reject(new FormError('FORMNET_NO_WIREGUARD', 'no wireguard-go'))
  t.same(await openFormnetDevice(o('auto', noWireguard)), { disabledReason: 'no wireguard-go' })
  await t.rejects(openFormnetDevice(o('on', noWireguard)), { code: 'FORMNET_NO_WIREGUARD' })
  await t.rejects(openFormnetDevice(o('auto', async () => Promise.reject(new FormError('FORMNET_BAD_INTERFACE', 'bad name')))), { code: 'FORMNET_BAD_INTERFACE' }, 'a configuration error is no reason to run without formnet')

  const device = fakeDevice()
  let up!: DeviceOptions['onUp']
  const result = await openFormnetDevice(
    o('auto', async (options) => {
      up = options.onUp
      await up(device)
      return device
    }),
  )
  t.equal(result.device, device)
  t.same(device.sets, [{ privateKey: 'PRIV', listenPort: 51820 }])
  t.same(assigned, ['fn0 198.18.0.1/32'])
  t.equal(restarts, 0, 'the first up is no restart')
  await up(device)
  t.equal(restarts, 1, 'a later up (wireguard-go restarted) asks for a reconciliation')
  t.equal(device.sets.length, 2)
})

function fakeApi() {
  const routes = new Map<string, ApiHandler>()
  const api = { get: (path: string, h: ApiHandler) => void routes.set(`GET ${path}`, h), post: (path: string, h: ApiHandler) => void routes.set(`POST ${path}`, h) }
  const call = (route: string, caller: string, body?: unknown) => routes.get(route)!({ caller, json: () => body } as unknown as ApiRequest) as Promise<Record<string, unknown>>
  return { api: api as unknown as Parameters<typeof serveFormnetApi>[0], call }
}

t.test('api: a developer joins with a key and gets an address from the top of the subnet, keeps it on re-join, and leaves', async (t) => {
  const s = fakeState()
  await s.put('cidrs', `198.18.0.0_24/${ME}`, {})
  const device = fakeDevice()
  let requests = 0
  const reconciler = { subnet: '198.18.0.0/24', address: () => '198.18.0.1', request: async () => void requests++, lastError: undefined, skipped: new Map([['198.18.1.0/24', ['route x']]]) }
  const deps = { state: asState(s), me: ME, config, publicKey: 'NODEKEY', endpoint: '192.0.2.1:51820', readView: s.readView, reconciler, log, routesOf: async () => ['198.18.0.254/32'] }
  const on = fakeApi()
  serveFormnetApi(on.api, { ...deps, device, disabledReason: undefined })
  const key = generateWireGuardKeys().publicKey
  await t.rejects(on.call('POST /join', '0xdev', { publicKey: 'not a key' }), { code: 'FORMNET_BAD_KEY' })
  const joined = await on.call('POST /join', '0xdev', { publicKey: key })
  t.match(joined, { address: '198.18.0.254', cidr: config.formnet_cidr, node: { address: ME, formnetAddress: '198.18.0.1', publicKey: 'NODEKEY' } })
  t.match((await s.get('peers', `${ME}/0xdev`))?.value, { publicKey: key, address: '198.18.0.254', owner: '0xdev' })
  const puts = s.puts
  t.equal((await on.call('POST /join', '0xdev', { publicKey: key })).address, '198.18.0.254', 're-join: the same address')
  t.equal(s.puts, puts, 'nothing written again')
  t.equal((await on.call('POST /join', '0xother', { publicKey: generateWireGuardKeys().publicKey })).address, '198.18.0.253', 'the next developer: the next address down')
  const status = await on.call('GET /status', ME)
  t.match(status, { enabled: true, subnet: '198.18.0.0/24', routes: ['198.18.0.254/32'], skippedRoutes: [{ route: '198.18.1.0/24', conflicts: ['route x'] }], listenPort: 51820 })
  t.same(await on.call('POST /leave', '0xdev'), { removed: true })
  t.equal(await s.get('peers', `${ME}/0xdev`), undefined)
  t.same(await on.call('POST /leave', '0xdev'), { removed: false })
  t.equal(requests, 5, 'every join and leave asks for a reconciliation')

  const off = fakeApi()
  serveFormnetApi(off.api, { ...deps, device: undefined, disabledReason: 'formnet = "off"' })
  await t.rejects(off.call('POST /join', '0xdev', { publicKey: key }), { code: 'FORMNET_DISABLED', message: /formnet = "off"/ })
  t.match(await off.call('GET /status', ME), { enabled: false, reason: 'formnet = "off"', routes: [] })
  t.ok(contains(parseCidr('198.18.0.0/24'), String(joined.address)))
})
