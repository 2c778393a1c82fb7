import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { NetConfig } from '../index.js'
import { readHostNetworks } from '../lib/formnet/hostnet.js'
import { parseCidr } from '../lib/formnet/ipam.js'
import { formnetView, type FormnetView } from '../lib/formnet/peers.js'
import type { WireGuardDevice } from '../lib/wireguard/device.js'
import { loadOrCreateWireGuardKeys } from '../lib/wireguard/keys.js'
import { serveFormnetApi } from './formnet/api.js'
import { claimSubnet } from './formnet/claim.js'
import { openFormnetDevice } from './formnet/device.js'
import { FormnetReconciler } from './formnet/reconciler.js'

export { FORMNET_MTU } from './formnet/reconciler.js'

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

/**
 * formnet: claims this node's subnet, runs the WireGuard device, and keeps its peers and the host's
 * routes in line with state. Each concern is a unit of ./formnet/; this function wires them together.
 */
export async function startFormnet(ctx: ServiceContext<NetConfig, 'state'>): Promise<RunningService<FormnetHandle>> {
  const config = ctx.config
  const state = ctx.use('state')
  const me = state.address
  const log = ctx.log
  const keys = await loadOrCreateWireGuardKeys(join(ctx.paths.dataDir, 'keys', 'wireguard.json'))
  const bounds = { space: parseCidr(config.formnet_cidr), prefix: config.formnet_subnet_prefix }
  const readView = async (): Promise<FormnetView> => formnetView(await state.all('cidrs'), await state.all('nodes'), await state.all('peers'), bounds)
  // The host's own networks, besides the links formnet manages: no formnet subnet or route may overlap them.
  const hostNetworks = () => readHostNetworks([config.formnet_interface, config.bridge_name])
  const claim = () => claimSubnet({ state, me, config, bounds, readView, hostNetworks, log })

  const endpoint = config.formnet_endpoint || defaultEndpoint(config)
  let device: WireGuardDevice | undefined
  const publishRecord = (subnet: string, address: string): Promise<void> => state.updateNodeRecord({ formnet: { publicKey: keys.publicKey, endpoint, subnet, address } })
  const reconciler = new FormnetReconciler({ state, me, config, bounds, readView, hostNetworks, claim, publishRecord, device: () => device, health: ctx.health, signal: ctx.signal, log }, await claim())
  const opened = await openFormnetDevice({
    config,
    pidFile: join(ctx.paths.runtimeDir, 'formnet-wireguard.pid'),
    privateKey: keys.privateKey,
    address: () => reconciler.address(),
    onRestart: () => void reconciler.request(),
    log,
  })
  device = opened.device
  const disabledReason = opened.disabledReason
  await publishRecord(reconciler.subnet, reconciler.address())
  await reconciler.request()

  const watchers = new AbortController()
  const stop = AbortSignal.any([watchers.signal, ctx.signal])
  for (const collection of ['nodes', 'peers', 'cidrs']) {
    ctx.health.loop(`watch of ${collection}`, async () => {
      for await (const _ of state.watch(collection, '', stop)) void reconciler.request()
    })
  }
  const timer = setInterval(() => void reconciler.request(), config.formnet_reconcile_interval_ms)
  timer.unref()
  serveFormnetApi(ctx.api, { state, me, config, publicKey: keys.publicKey, endpoint, device, disabledReason, readView, reconciler, log })

  const handle: FormnetHandle = {
    enabled: Boolean(device),
    cidr: config.formnet_cidr,
    subnet: () => reconciler.subnet,
    address: () => reconciler.address(),
    bridge: { name: config.bridge_name, subnet: config.bridge_subnet },
  }
  return {
    handle,
    info: () => ({ enabled: Boolean(device), interface: device?.name, driver: device?.driver, subnet: reconciler.subnet, address: reconciler.address(), endpoint, reason: disabledReason }),
    stop: async () => {
      clearInterval(timer)
      watchers.abort()
      await reconciler.settle()
      await device?.close()
    },
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
