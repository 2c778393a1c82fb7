import { readFile } from 'node:fs/promises'
import { FormError } from '../../../../core/errors.js'
import { nameserversIn } from '../../../../core/patterns.js'
import { ip } from '../ip.js'
import { formatCidr, overlaps, parseRoute, type Cidr } from './ipam.js'

/**
 * What the host already reaches other than through formnet: its addresses (and so their connected
 * networks), its routes in every table, and its DNS resolvers. formnet must never put an address or
 * a route over any of them, or it captures the host's own traffic (a resolver in 10.0.0.0/8 routed
 * into WireGuard takes the machine's DNS down). The default route is not a conflict: it is where
 * traffic goes when nothing more specific matches, and formnet's routes are that something.
 * Read in the calling process's network namespace.
 */

export interface HostNetwork {
  cidr: Cidr
  /** for errors: `route 10.1.0.0/16 via 10.1.0.254 dev eth0`, `address 10.1.2.2/24 on eth0`, `resolver 10.1.1.53 (/etc/resolv.conf)` */
  what: string
}

/** Where resolvers are read: the system's file, and systemd-resolved's upstreams behind its 127.0.0.53 stub. */
export const RESOLV_CONF_FILES = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']

interface RouteJson {
  type?: string
  dst: string
  gateway?: string
  dev?: string
  table?: string
  protocol?: string
}

interface AddrJson {
  ifname: string
  addr_info?: { family?: string; local: string; prefixlen: number }[]
}

const json = async <T>(args: string[]): Promise<T[]> => {
  try {
    return JSON.parse((await ip(args, { allowFailure: true })) || '[]') as T[]
  } catch {
    return []
  }
}

/**
 * The host's networks, leaving out the links formnet itself manages (its WireGuard interface and
 * the node's instance bridge), whose routes are formnet's own.
 */
export async function readHostNetworks(exclude: string[], resolvConf = RESOLV_CONF_FILES): Promise<HostNetwork[]> {
  const skip = new Set(exclude)
  const out = new Map<string, HostNetwork>()
  const add = (cidr: Cidr | undefined, what: string) => cidr && out.set(what, { cidr, what })
  for (const r of await json<RouteJson>(['-j', '-4', 'route', 'show', 'table', 'all'])) {
    // routes the kernel derives from an address are named by the address below; default is no conflict
    if (r.dst === 'default' || r.protocol === 'kernel' || r.type === 'multicast' || (r.dev && skip.has(r.dev))) continue
    const cidr = parseRoute(r.dst)
    if (!cidr || cidr.prefix === 0) continue
    const table = r.table && r.table !== 'main' ? ` table ${r.table}` : ''
    add(cidr, `${r.type && r.type !== 'unicast' ? `${r.type} ` : ''}route ${formatCidr(cidr)}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${table}`)
  }
  for (const link of await json<AddrJson>(['-j', '-4', 'addr', 'show'])) {
    if (skip.has(link.ifname)) continue
    for (const a of link.addr_info ?? []) {
      if (a.family && a.family !== 'inet') continue
      add(networkOf(a.local, a.prefixlen), `address ${a.local}/${a.prefixlen} on ${link.ifname}`)
    }
  }
  for (const file of resolvConf) {
    const text = await readFile(file, 'utf8').catch(() => '')
    for (const address of nameserversIn(text)) add(parseRoute(address), `resolver ${address} (${file})`)
  }
  return [...out.values()]
}

function networkOf(address: string, prefix: number): Cidr | undefined {
  const host = parseRoute(address)
  if (!host || !(prefix >= 0 && prefix <= 32)) return undefined
  const size = 2 ** (32 - prefix)
  return { base: host.base - (host.base % size), prefix }
}

/** The host's networks a formnet range or route would overlap. */
export function conflictsWith(host: HostNetwork[], cidr: Cidr): HostNetwork[] {
  return host.filter((h) => overlaps(h.cidr, cidr))
}

/**
 * Routes that overlap nothing of the host's, and those left out with what they overlap. A route
 * that is not a CIDR is left out too.
 */
export function routable(host: HostNetwork[], routes: Iterable<string>): { routes: string[]; skipped: Map<string, string[]> } {
  const out = { routes: [] as string[], skipped: new Map<string, string[]>() }
  for (const r of new Set(routes)) {
    const c = parseRoute(r)
    const hit = c ? conflictsWith(host, c).map((h) => h.what) : ['not a CIDR']
    if (hit.length) out.skipped.set(r, hit)
    else out.routes.push(r)
  }
  return out
}

/**
 * The error a node gives when formnet cannot fit beside the host: it names what is in the way (at
 * most five of them) and the setting to change.
 */
export function hostConflictError(what: string, cidr: Cidr, host: HostNetwork[]): FormError {
  const found = conflictsWith(host, cidr)
  const listed = found.slice(0, 5).map((h) => h.what).join('; ') + (found.length > 5 ? `; and ${found.length - 5} more` : '')
  return new FormError('FORMNET_CONFLICT', `${what} ${formatCidr(cidr)} overlaps networks this host already uses: ${listed}`, {
    hint: 'formnet would capture that traffic. Set [net] formnet_cidr to a range this host neither routes nor addresses (the same on every node of the network), or move the host network out of it',
    details: { cidr: formatCidr(cidr), conflicts: found.map((h) => h.what) },
  })
}
