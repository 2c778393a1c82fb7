import { FormError } from '../../../../core/errors.js'
import type { ApiRouter } from '../../../../core/daemon/router.js'
import type { Logger } from '../../../../core/log.js'
import type { StateHandle } from '../../../state/index.js'
import { routesOf } from '../../lib/ip.js'
import { allocateHost, parseCidr } from '../../lib/formnet/ipam.js'
import { developerPeers, subnetAddressesInUse, type FormnetView } from '../../lib/formnet/peers.js'
import type { WireGuardDevice } from '../../lib/wireguard/device.js'
import { decodeKey } from '../../lib/wireguard/keys.js'
import type { FormnetReconciler } from './reconciler.js'

export interface FormnetApiDeps {
  state: Pick<StateHandle, 'get' | 'put' | 'delete' | 'all'>
  me: string
  config: { formnet_cidr: string; formnet_keepalive_s: number }
  publicKey: string
  endpoint: string | undefined
  device: WireGuardDevice | undefined
  disabledReason: string | undefined
  readView(): Promise<FormnetView>
  reconciler: Pick<FormnetReconciler, 'subnet' | 'address' | 'request' | 'lastError' | 'skipped'>
  log: Logger
  /** the routes on an interface (tests pass their own) */
  routesOf?: typeof routesOf
}

function safeKey(k: string): boolean {
  try {
    decodeKey(k)
    return true
  } catch {
    return false
  }
}

/** formnet's API: developers join (a /32 of this node's subnet for their key) and leave; peers and status. */
export function serveFormnetApi(api: Pick<ApiRouter, 'get' | 'post'>, deps: FormnetApiDeps): void {
  const { state, me, config, device, disabledReason, readView, reconciler, log } = deps
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
      address = allocateHost(parseCidr(reconciler.subnet), await subnetAddressesInUse(state, me), { fromTop: true })
    }
    if (existing?.publicKey !== publicKey || existing?.address !== address) {
      await state.put('peers', key, { publicKey, address, owner, admittedAt: Date.now() })
      log.info('admitted a developer to formnet', { owner, address })
    }
    await reconciler.request()
    return { address, cidr: config.formnet_cidr, node: { address: me, formnetAddress: reconciler.address(), publicKey: deps.publicKey, endpoint: deps.endpoint }, peers: developerPeers(view.nodes, config.formnet_keepalive_s) }
  })
  api.post('/leave', async (req) => {
    const key = `${me}/${req.caller}`
    const removed = Boolean(await state.get('peers', key))
    if (removed) {
      await state.delete('peers', key)
      log.info('removed a developer from formnet', { owner: req.caller })
    }
    await reconciler.request()
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
      subnet: reconciler.subnet,
      address: reconciler.address(),
      publicKey: deps.publicKey,
      endpoint: deps.endpoint,
      listenPort: dev?.listenPort,
      lastError: reconciler.lastError,
      routes: device ? await (deps.routesOf ?? routesOf)(device.name) : [],
      skippedRoutes: [...reconciler.skipped].map(([route, conflicts]) => ({ route, conflicts })),
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
}
