import { rm } from 'node:fs/promises'
import { writeSecretFile } from '../../../../core/files.js'
import type { Logger } from '../../../../core/log.js'
import { FormError } from '../../../../core/errors.js'
import { setAddress, syncRoutes } from '../ip.js'
import { openDevice } from '../wireguard/device.js'
import { readHostNetworks, routable, type HostNetwork } from './hostnet.js'
import { contains, nodeAddress, parseCidr, parseRoute, within, type Cidr } from './ipam.js'
import { planPeers, type DesiredPeer } from './reconcile.js'

/** What `form manage formnet-up` keeps running on a developer's machine. */
export interface DeveloperInterfaceOptions {
  interface: string
  driver: 'auto' | 'kernel' | 'userspace'
  /** this machine's formnet address (a /32), and the formnet range: only node subnets inside it are routed */
  address: string
  cidr: string
  privateKey: string
  /** the nodes to peer with, from the node that admitted this developer */
  fetchPeers(): Promise<DesiredPeer[]>
  intervalMs: number
  /** the wireguard-go pid, so a leftover from a killed run is stopped */
  wireguardPidFile: string
  /** written after each successful sync: what `form net status` and `formnet-up --detach` read */
  statusFile: string
  log: Logger
  signal: AbortSignal
}

const MTU = 1420

/**
 * The DNS server for `.fog` on formnet: the node that admitted this developer, at the first address
 * of the routed subnet that holds the developer's own address. Undefined until that route is known.
 */
export function fogResolver(address: string, routes: string[]): string | undefined {
  for (const r of routes) {
    const c = parseRoute(r)
    if (c && c.prefix < 32 && contains(c, address)) return nodeAddress(c)
  }
  return undefined
}

/**
 * Points this machine's resolver for `.fog` at the node through systemd-resolved (per-link DNS and
 * the routing-only domain `~fog`), where resolvectl exists; else says what to do by hand.
 */
export async function resolveFogThrough(iface: string, server: string, log: Logger): Promise<void> {
  const { execa } = await import('execa')
  const dns = await execa('resolvectl', ['dns', iface, server], { reject: false })
  const domain = dns.exitCode === 0 ? await execa('resolvectl', ['domain', iface, '~fog'], { reject: false }) : dns
  if (domain.exitCode === 0) log.info('.fog names resolve through the node (resolvectl: per-link DNS and domain ~fog)', { interface: iface, server })
  else log.info('.fog names: no resolvectl here (or systemd-resolved is not running); ask the node directly', { server, example: `dig @${server} <instance>.fog`, why: String(domain.stderr || (domain as { shortMessage?: string }).shortMessage || '').trim().slice(0, 200) })
}

/**
 * The node's peer list is remote data: only allowed IPs inside formnet are kept (a node saying
 * 0.0.0.0/0 would take every packet of this machine), and each node's subnet is routed on its own
 * unless it overlaps a network this machine already uses (a LAN, a VPN, its DNS resolver).
 */
export function developerPlan(space: Cidr, peers: DesiredPeer[], host: HostNetwork[]): { desired: DesiredPeer[]; routes: string[]; skipped: Map<string, string[]> } {
  const inside = (a: string) => {
    const c = parseRoute(a)
    return c !== undefined && within(space, c)
  }
  const desired = peers.map((p) => ({ ...p, allowedIps: p.allowedIps.filter(inside) }))
  return { desired, ...routable(host, desired.flatMap((p) => p.allowedIps)) }
}

/**
 * Brings the developer's interface up and keeps its peers equal to the node list until `signal`
 * aborts, then removes the interface. A node that cannot be reached leaves the peers as they are.
 */
export async function runDeveloperInterface(o: DeveloperInterfaceOptions): Promise<void> {
  const space = parseCidr(o.cidr)
  // what the node says is formnet; a wider range would let it route this machine's traffic away
  if (space.prefix < 8) throw new FormError('FORMNET_BAD_CIDR', `the node gave formnet ${o.cidr}, wider than a /8`, { hint: 'join through a node whose [net] formnet_cidr is a /8 or narrower' })
  let routed: string[] = []
  let fogServer: string | undefined
  const device = await openDevice({
    name: o.interface,
    driver: o.driver,
    pidFile: o.wireguardPidFile,
    log: o.log,
    onUp: async (d) => {
      await d.set({ privateKey: o.privateKey })
      await setAddress(d.name, `${o.address}/32`, MTU)
      // wireguard-go restarted: its routes (and per-link resolver settings) went with the interface
      await syncRoutes(d.name, routed)
      fogServer = undefined
    },
  })
  o.log.info('formnet interface up', { interface: o.interface, address: o.address })
  let failures = 0
  const warned = new Set<string>()
  try {
    while (!o.signal.aborted) {
      try {
        const { desired, routes, skipped } = developerPlan(space, await o.fetchPeers(), await readHostNetworks([o.interface]))
        routed = routes
        for (const [subnet, conflicts] of skipped) {
          if (!warned.has(subnet)) o.log.warn('a formnet subnet overlaps a network of this machine; it is not routed to formnet', { subnet, conflicts })
          warned.add(subnet)
        }
        const changes = planPeers(await device.get(), desired)
        if (changes.length) {
          await device.set({ peers: changes })
          o.log.info('formnet peers updated', { peers: desired.length, changed: changes.length })
        }
        await syncRoutes(device.name, routed)
        const server = fogResolver(o.address, routed)
        if (server && server !== fogServer) {
          fogServer = server
          await resolveFogThrough(device.name, server, o.log)
        }
        failures = 0
        await writeSecretFile(o.statusFile, JSON.stringify({ pid: process.pid, interface: o.interface, address: o.address, peers: desired.length, routes: routed, syncedAt: Date.now() }) + '\n', true)
      } catch (error) {
        if (failures++ % 10 === 0) o.log.warn('could not sync formnet peers; keeping the current ones', { error: (error as Error).message })
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, o.intervalMs)
        o.signal.addEventListener('abort', () => (clearTimeout(timer), resolve(undefined)), { once: true })
      })
    }
  } finally {
    await device.close()
    await rm(o.statusFile, { force: true })
    o.log.info('formnet interface down', { interface: o.interface })
  }
}
