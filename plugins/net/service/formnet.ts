import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NetConfig } from '../index.js'
import { routesOf, setAddress, syncRoutes } from '../lib/ip.js'
import { conflictsWith, hostConflictError, readHostNetworks, routable } from '../lib/formnet/hostnet.js'
import { allocateHost, chooseSubnet, formatCidr, nodeAddress, parseCidr, subnetFromKey, within } from '../lib/formnet/ipam.js'
import { claimsOf, developerPeers, formnetView, inBounds, nodePeers, nodeRoutes, subnetAddressesInUse, type FormnetView } from '../lib/formnet/peers.js'
import { planPeers } from '../lib/formnet/reconcile.js'
import { openDevice, type WireGuardDevice } from '../lib/wireguard/device.js'
import { decodeKey, loadOrCreateWireGuardKeys } from '../lib/wireguard/keys.js'

/** What services that depend on `formnet` get from ctx.use('formnet'). */
export interface FormnetHandle {
  /** false when formnet is off or this machine cannot run WireGuard; the subnet is still claimed */
  enabled: boolean
  /** the whole formnet range, e.g. 198.18.0.0/15 (never put on an interface: each node's subnet is routed on its own) */
  cidr: string
  /** this node's subnet (its instances and admitted developers live in it), e.g. 10.42.7.0/24 */
  subnet(): string
  /** this node's own formnet address (.1 of its subnet) */
  address(): string
  /** the instances' bridge as [net] sets it: its interface, and its subnet ('': this node's formnet subnet) */
  bridge: { name: string; subnet: string }
}

declare module '../../../core/plugin.js' {
  interface ServiceHandles {
    formnet: FormnetHandle
  }
}

/** MTU of formnet interfaces: 1500 minus WireGuard's IPv4/UDP overhead. */
export const FORMNET_MTU = 1420

export async function startFormnet(ctx: ServiceContext<NetConfig, 'state'>): Promise<RunningService<FormnetHandle>> {
  const config = ctx.config
  const state = ctx.use('state')
  const me = state.address
  const log = ctx.log
  const space = parseCidr(config.formnet_cidr)
  const keys = await loadOrCreateWireGuardKeys(join(ctx.paths.dataDir, 'keys', 'wireguard.json'))

  const bounds = { space, prefix: config.formnet_subnet_prefix }
  const readView = async (): Promise<FormnetView> => formnetView(await state.all('cidrs'), await state.all('nodes'), await state.all('peers'), bounds)
  // The host's own networks, besides the links formnet manages: no formnet subnet or route may overlap them.
  const hostNetworks = () => readHostNetworks([config.formnet_interface, config.bridge_name])

  // A subnet claim: the earliest claim of a subnet wins on every replica; a node that lost claims
  // another. The node claims only a subnet that overlaps nothing the host already uses, and keeps
  // one it holds only while that stays true.
  const claim = async (): Promise<string> => {
    for (;;) {
      const host = await hostNetworks()
      const records = await state.all('cidrs')
      // a subnet won under another formnet_cidr, which the instance bridge keeps: say so rather than hold two
      const old = formnetView(records, [], []).subnets.get(me)
      if (old && !(within(space, parseCidr(old)) && parseCidr(old).prefix === bounds.prefix)) {
        throw new FormError('FORMNET_RANGE_CHANGED', `this node holds formnet subnet ${old}, not a /${bounds.prefix} of [net] formnet_cidr ${config.formnet_cidr}`, {
          hint: 'set [net] formnet_cidr and formnet_subnet_prefix back to what this network uses (networks started before the default became 198.18.0.0/15 use 10.0.0.0/8); every node of a network must use the same',
        })
      }
      const held = (await readView()).subnets.get(me)
      if (held) {
        if (conflictsWith(host, parseCidr(held)).length) throw hostConflictError('this node\'s formnet subnet', parseCidr(held), host)
        return held
      }
      let key: string
      try {
        key = chooseSubnet(me, claimsOf(records), space, config.formnet_subnet_prefix, (c) => conflictsWith(host, c).length === 0)
      } catch (error) {
        throw (error as FormError).code === 'FORMNET_CONFLICT' ? hostConflictError('formnet', space, host) : error
      }
      log.info('claiming a formnet subnet', { subnet: formatCidr(subnetFromKey(key)) })
      await state.put('cidrs', `${key}/${me}`, { node: me, subnet: formatCidr(subnetFromKey(key)) })
    }
  }
  let subnet = await claim()
  const myAddress = () => nodeAddress(parseCidr(subnet))
  const endpoint = config.formnet_endpoint || defaultEndpoint(config)
  const publishRecord = () => state.updateNodeRecord({ formnet: { publicKey: keys.publicKey, endpoint, subnet, address: myAddress() } })

  let device: WireGuardDevice | undefined
  let disabledReason: string | undefined = config.formnet === 'off' ? 'formnet = "off" in the operator config' : undefined
  // peer routes left out because they overlap a host network, logged once each
  let skipped = new Map<string, string[]>()
  // nodes whose claims lie outside this node's formnet range, warned about once each
  const strays = new Set<string>()

  // One reconciliation at a time; a request while one runs schedules exactly one more.
  let running: Promise<void> | undefined
  let again = false
  let lastError: string | undefined
  const reconcile = async (): Promise<void> => {
    const view = await readView()
    const held = view.subnets.get(me)
    if (held !== subnet) {
      // a concurrent earlier claim took our subnet: claim another and move to it
      subnet = held ?? (await claim())
      log.warn('this node moved to another formnet subnet', { subnet })
      await publishRecord()
      if (device) await setAddress(device.name, `${myAddress()}/32`, FORMNET_MTU)
    }
    for (const c of claimsOf(await state.all('cidrs'))) {
      if (inBounds(c, bounds) || strays.has(c.node)) continue
      strays.add(c.node)
      log.warn('a node claims a formnet subnet outside this node\'s [net] formnet_cidr; it is not a peer', { node: c.node, subnet: c.subnet.replace('_', '/'), formnet_cidr: config.formnet_cidr, hint: 'every node of a network must use the same formnet_cidr and formnet_subnet_prefix' })
    }
    if (!device) return
    const desired = nodePeers(view, me, config.formnet_keepalive_s)
    const changes = planPeers(await device.get(), desired)
    if (changes.length) {
      await device.set({ peers: changes })
      log.info('formnet peers updated', { added: changes.filter((c) => !c.remove && c.allowedIps).length, removed: changes.filter((c) => c.remove).length })
    }
    // The interface holds only this node's /32: each peer node's subnet is routed to it on its own,
    // and so is each developer admitted here (its /32 lies in this node's subnet, which is the
    // instance bridge's). A route over a network the host already uses is left out.
    const { routes, skipped: now } = routable(await hostNetworks(), nodeRoutes(view, me))
    for (const [route, conflicts] of now) if (!skipped.has(route)) log.warn('a formnet route overlaps a network of this host; it is not routed to formnet', { route, conflicts })
    skipped = now
    const { added, removed } = await syncRoutes(device.name, routes)
    if (added.length || removed.length) log.info('formnet routes updated', { added, removed })
  }
  const requestReconcile = (): Promise<void> => {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        try {
          await reconcile()
          lastError = undefined
          ctx.health.recovered('reconciliation')
        } catch (error) {
          lastError = (error as Error).message
          ctx.health.degraded('reconciliation', `formnet reconciliation failed: ${lastError}`)
        }
      } while (again && !ctx.signal.aborted)
    })().finally(() => (running = undefined))
    return running
  }

  const setUp = async (d: WireGuardDevice) => {
    await d.set({ privateKey: keys.privateKey, listenPort: config.formnet_port })
    await setAddress(d.name, `${myAddress()}/32`, FORMNET_MTU)
  }
  if (!disabledReason) {
    try {
      device = await openDevice({
        name: config.formnet_interface,
        driver: config.formnet_driver,
        pidFile: join(ctx.paths.runtimeDir, 'formnet-wireguard.pid'),
        log,
        onUp: async (d) => {
          await setUp(d)
          // after a restart of wireguard-go the peers are gone too
          if (device) void requestReconcile()
        },
      })
    } catch (error) {
      const code = (error as FormError).code
      if (config.formnet === 'on' || !['FORMNET_UNAVAILABLE', 'FORMNET_NO_WIREGUARD', 'FORMNET_NO_TUN'].includes(code)) throw error
      disabledReason = (error as Error).message
      log.warn('formnet is disabled on this node', { reason: disabledReason })
    }
  }
  await publishRecord()
  await requestReconcile()

  const watchers = new AbortController()
  const stop = AbortSignal.any([watchers.signal, ctx.signal])
  for (const collection of ['nodes', 'peers', 'cidrs']) {
    ctx.health.loop(`watch of ${collection}`, async () => {
      for await (const _ of state.watch(collection, '', stop)) void requestReconcile()
    })
  }
  const timer = setInterval(() => void requestReconcile(), config.formnet_reconcile_interval_ms)
  timer.unref()

  const api = ctx.api
  api.post('/join', async (req) => {
    if (!device) throw new FormError('FORMNET_DISABLED', `formnet is not running on this node: ${disabledReason}`, { httpStatus: 503, hint: 'join through another node, or ask its operator to enable formnet' })
    const body = req.json<{ publicKey?: unknown }>()
    const publicKey = body?.publicKey
    if (typeof publicKey !== 'string' || !safeKey(publicKey)) throw new FormError('FORMNET_BAD_KEY', 'publicKey must be a WireGuard public key (32 bytes, base64)', { httpStatus: 400 })
    const owner = req.caller!
    const key = `${me}/${owner}`
    const existing = (await state.get('peers', key))?.value as { address?: string; publicKey?: string } | undefined
    const view = await readView()
    let address = existing?.address
    if (!address || !view.peers.some((p) => p.node === me && p.owner === owner)) {
      address = allocateHost(parseCidr(subnet), await subnetAddressesInUse(state, me), { fromTop: true })
    }
    if (existing?.publicKey !== publicKey || existing?.address !== address) {
      await state.put('peers', key, { publicKey, address, owner, admittedAt: Date.now() })
      log.info('admitted a developer to formnet', { owner, address })
    }
    await requestReconcile()
    return { address, cidr: config.formnet_cidr, node: { address: me, formnetAddress: myAddress(), publicKey: keys.publicKey, endpoint }, peers: developerPeers(view.nodes, config.formnet_keepalive_s) }
  })
  api.post('/leave', async (req) => {
    const key = `${me}/${req.caller}`
    const removed = Boolean(await state.get('peers', key))
    if (removed) {
      await state.delete('peers', key)
      log.info('removed a developer from formnet', { owner: req.caller })
    }
    await requestReconcile()
    return { removed }
  })
  api.get('/peers', async () => ({ cidr: config.formnet_cidr, peers: developerPeers((await readView()).nodes, config.formnet_keepalive_s) }))
  api.get('/status', async () => {
    const view = await readView()
    const names = new Map<string, { kind: string; name: string }>()
    for (const n of view.nodes) names.set(n.publicKey, { kind: 'node', name: n.node })
    for (const p of view.peers) if (!names.has(p.publicKey)) names.set(p.publicKey, { kind: 'developer', name: p.owner })
    const dev = device ? await device.get() : undefined
    const now = Date.now() / 1000
    return {
      enabled: Boolean(device),
      reason: disabledReason,
      interface: device?.name,
      driver: device?.driver,
      cidr: config.formnet_cidr,
      subnet,
      address: myAddress(),
      publicKey: keys.publicKey,
      endpoint,
      listenPort: dev?.listenPort,
      lastError,
      routes: device ? (await routesOf(device.name)) : [],
      skippedRoutes: [...skipped].map(([route, conflicts]) => ({ route, conflicts })),
      peers: (dev?.peers ?? []).map((p) => ({
        ...names.get(p.publicKey),
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIps: p.allowedIps,
        lastHandshake: p.lastHandshake,
        handshakeAgeS: p.lastHandshake ? Math.round(now - p.lastHandshake) : null,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
      })),
    }
  })

  const handle: FormnetHandle = {
    enabled: Boolean(device),
    cidr: config.formnet_cidr,
    subnet: () => subnet,
    address: myAddress,
    bridge: { name: config.bridge_name, subnet: config.bridge_subnet },
  }
  return {
    handle,
    info: () => ({ enabled: Boolean(device), interface: device?.name, driver: device?.driver, subnet, address: myAddress(), endpoint, reason: disabledReason }),
    stop: async () => {
      clearInterval(timer)
      watchers.abort()
      await running?.catch(() => {})
      await device?.close()
    },
  }
}

function safeKey(k: string): boolean {
  try {
    decodeKey(k)
    return true
  } catch {
    return false
  }
}

/** host:port where other formnet members reach this node: its first non-loopback IPv4 address. */
function defaultEndpoint(config: NetConfig): string | undefined {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === config.formnet_interface || name === config.bridge_name) continue
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal)
    if (a) return `${a.address}:${config.formnet_port}`
  }
  return undefined
}
