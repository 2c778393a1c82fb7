import type { Logger } from '../../../../core/log.js'
import type { ServiceHealth } from '../../../../core/plugin.js'
import type { StateHandle } from '../../../state/index.js'
import { setAddress, syncRoutes } from '../../lib/ip.js'
import { routable, type HostNetwork } from '../../lib/formnet/hostnet.js'
import { nodeAddress, parseCidr, type Cidr } from '../../lib/formnet/ipam.js'
import { claimsOf, inBounds, nodePeers, nodeRoutes, type FormnetView } from '../../lib/formnet/peers.js'
import { planPeers } from '../../lib/formnet/reconcile.js'
import type { WireGuardDevice } from '../../lib/wireguard/device.js'

/** MTU of formnet interfaces: 1500 minus WireGuard's IPv4/UDP overhead. */
export const FORMNET_MTU = 1420

export interface ReconcilerDeps {
  state: Pick<StateHandle, 'all'>
  me: string
  config: { formnet_cidr: string; formnet_keepalive_s: number }
  bounds: { space: Cidr; prefix: number }
  readView(): Promise<FormnetView>
  hostNetworks(): Promise<HostNetwork[]>
  /** claims a subnet anew (this node lost the one it held) */
  claim(): Promise<string>
  /** writes this node's formnet record for the subnet it holds now */
  publishRecord(subnet: string, address: string): Promise<void>
  /** the WireGuard device, while formnet runs */
  device(): WireGuardDevice | undefined
  health: Pick<ServiceHealth, 'degraded' | 'recovered'>
  signal: AbortSignal
  log: Logger
  /** the host's addresses and routes (tests pass their own) */
  ip?: { setAddress: typeof setAddress; syncRoutes: typeof syncRoutes }
}

/**
 * Brings the WireGuard device's peers and the host's routes in line with state (the formnet view),
 * and follows this node's subnet when a concurrent earlier claim took it. One reconciliation at a
 * time; a request while one runs schedules exactly one more.
 */
export class FormnetReconciler {
  private running: Promise<void> | undefined
  private again = false
  /** the last reconciliation's failure, until one succeeds */
  lastError: string | undefined
  /** peer routes left out because they overlap a host network, logged once each */
  skipped = new Map<string, string[]>()
  /** nodes whose claims lie outside this node's formnet range, warned about once each */
  private readonly strays = new Set<string>()
  private readonly ip: NonNullable<ReconcilerDeps['ip']>

  constructor(
    private readonly deps: ReconcilerDeps,
    /** this node's subnet, as claimed at start */
    public subnet: string,
  ) {
    this.ip = deps.ip ?? { setAddress, syncRoutes }
  }

  /** this node's own formnet address (.1 of its subnet) */
  address(): string {
    return nodeAddress(parseCidr(this.subnet))
  }

  request(): Promise<void> {
    if (this.running) {
      this.again = true
      return this.running
    }
    const { health, signal } = this.deps
    this.running = (async () => {
      do {
        this.again = false
        try {
          await this.reconcile()
          this.lastError = undefined
          health.recovered('reconciliation')
        } catch (error) {
          this.lastError = (error as Error).message
          health.degraded('reconciliation', `formnet reconciliation failed: ${this.lastError}`)
        }
      } while (this.again && !signal.aborted)
    })().finally(() => (this.running = undefined))
    return this.running
  }

  /** Waits for the reconciliation under way, if any; its failure is already reported. */
  async settle(): Promise<void> {
    await this.running?.catch(() => {})
  }

  private async reconcile(): Promise<void> {
    const { state, me, config, bounds, log } = this.deps
    const view = await this.deps.readView()
    const held = view.subnets.get(me)
    if (held !== this.subnet) {
      // a concurrent earlier claim took our subnet: claim another and move to it
      this.subnet = held ?? (await this.deps.claim())
      log.warn('this node moved to another formnet subnet', { subnet: this.subnet })
      await this.deps.publishRecord(this.subnet, this.address())
      const moving = this.deps.device()
      if (moving) await this.ip.setAddress(moving.name, `${this.address()}/32`, FORMNET_MTU)
    }
    for (const c of claimsOf(await state.all('cidrs'))) {
      if (inBounds(c, bounds) || this.strays.has(c.node)) continue
      this.strays.add(c.node)
      log.warn('a node claims a formnet subnet outside this node\'s [net] formnet_cidr; it is not a peer', { node: c.node, subnet: c.subnet.replace('_', '/'), formnet_cidr: config.formnet_cidr, hint: 'every node of a network must use the same formnet_cidr and formnet_subnet_prefix' })
    }
    const device = this.deps.device()
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
    const { routes, skipped: now } = routable(await this.deps.hostNetworks(), nodeRoutes(view, me))
    for (const [route, conflicts] of now) if (!this.skipped.has(route)) log.warn('a formnet route overlaps a network of this host; it is not routed to formnet', { route, conflicts })
    this.skipped = now
    const { added, removed } = await this.ip.syncRoutes(device.name, routes)
    if (added.length || removed.length) log.info('formnet routes updated', { added, removed })
  }
}
