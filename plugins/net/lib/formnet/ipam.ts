import { createHash } from 'node:crypto'
import { FormError } from '../../../../core/errors.js'
import { parseIpv4, parseIpv4Cidr } from '../../../../core/patterns.js'

/**
 * formnet addressing. Each node claims one subnet of the formnet CIDR by writing
 * `cidrs/<subnet key>/<node address>` to state. When two nodes claim the same subnet, the claim with
 * the smaller (timestamp, operation hash) wins on every replica; the loser sees it and claims
 * another. Nodes start probing at a position derived from their address, so concurrent claimers
 * rarely collide at all.
 */

export interface Cidr {
  /** network address as a 32-bit unsigned integer */
  base: number
  prefix: number
}

export function parseCidr(text: string): Cidr {
  const parsed = parseIpv4Cidr(text)
  if (!parsed) throw new FormError('FORMNET_BAD_CIDR', `"${text}" is not an IPv4 CIDR`, { hint: 'e.g. 198.18.0.0/15' })
  const { octets, prefix } = parsed
  const addr = octets.reduce((a, o) => a * 256 + o, 0)
  const size = 2 ** (32 - prefix)
  if (addr % size !== 0) throw new FormError('FORMNET_BAD_CIDR', `"${text}" has host bits set`, { hint: `the network address is ${formatIp(addr - (addr % size))}/${prefix}` })
  return { base: addr, prefix }
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`
}

/** State keys cannot hold '/', so a subnet is written 10.1.2.0_24 in keys. */
export function subnetKey(c: Cidr): string {
  return `${formatIp(c.base)}_${c.prefix}`
}

export function subnetFromKey(key: string): Cidr {
  return parseCidr(key.replace('_', '/'))
}

export function subnetCount(space: Cidr, prefix: number): number {
  if (prefix < space.prefix || prefix > 30) throw new FormError('FORMNET_BAD_PREFIX', `node subnets of /${prefix} do not fit formnet /${space.prefix}`, { hint: `use a prefix between /${space.prefix} and /30` })
  return 2 ** (prefix - space.prefix)
}

export function subnetAt(space: Cidr, prefix: number, index: number): Cidr {
  return { base: space.base + index * 2 ** (32 - prefix), prefix }
}

export interface Claim {
  subnet: string
  node: string
  /** the claimant's admission order (state membership): who holds a contested subnet */
  rank: number
  /** the claim operation's timestamp and hash: only orders one node's own claims */
  t: { ms: number; n: number }
  hash: string
}

const byTime = (a: Claim, b: Claim) => a.t.ms - b.t.ms || a.t.n - b.t.n || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0)

/**
 * The winning claim of every claimed subnet: the claimant admitted first (ties by address). A
 * claim's timestamp is its author's choice, so it decides nothing between nodes: a back-dated claim
 * cannot take a subnet from a node admitted before its author.
 */
export function winners(claims: Iterable<Claim>): Map<string, Claim> {
  const out = new Map<string, Claim>()
  for (const c of claims) {
    const cur = out.get(c.subnet)
    if (!cur || c.rank < cur.rank || (c.rank === cur.rank && c.node < cur.node)) out.set(c.subnet, c)
  }
  return out
}

/** The subnet a node holds: the earliest (by its own claims' order) of the subnets it won, if any. */
export function subnetOf(node: string, claims: Iterable<Claim>): string | undefined {
  const won = [...winners(claims).values()].filter((c) => c.node === node).sort(byTime)
  return won[0]?.subnet
}

/**
 * The subnet a node should claim next: the first one, from a position given by its address, that no
 * one has claimed yet. Throws when formnet is full.
 */
export function chooseSubnet(node: string, claims: Iterable<Claim>, space: Cidr, prefix: number, usable: (subnet: Cidr) => boolean = () => true): string {
  const count = subnetCount(space, prefix)
  const taken = new Set([...claims].map((c) => c.subnet))
  const start = createHash('sha256').update(node).digest().readUInt32BE(0) % count
  let unusable = 0
  for (let i = 0; i < count; i++) {
    const subnet = subnetAt(space, prefix, (start + i) % count)
    const key = subnetKey(subnet)
    if (taken.has(key)) continue
    if (usable(subnet)) return key
    unusable++
  }
  if (unusable) throw new FormError('FORMNET_CONFLICT', `every free /${prefix} of formnet ${formatCidr(space)} overlaps a network this host already uses`, { hint: 'set [net] formnet_cidr to a range this host does not use' })
  throw new FormError('FORMNET_FULL', `every /${prefix} of formnet ${formatCidr(space)} is claimed`, { hint: 'use a larger formnet_cidr or smaller node subnets' })
}

/**
 * Host addresses inside a node's subnet: .1 is the node itself (its formnet and bridge address);
 * instances and admitted developers get the lowest free address after it.
 */
export function nodeAddress(subnet: Cidr): string {
  return formatIp(subnet.base + 1)
}

/**
 * The lowest free host address of a subnet, or with `fromTop` the highest: instances are numbered
 * upward and developer peers downward, so the two allocators of a node rarely meet.
 */
export function allocateHost(subnet: Cidr, used: Iterable<string>, options: { fromTop?: boolean } = {}): string {
  const taken = new Set(used)
  const first = subnet.base + 2
  const last = subnet.base + 2 ** (32 - subnet.prefix) - 2 // the broadcast address is not a host
  for (let i = 0; i <= last - first; i++) {
    const ip = formatIp(options.fromTop ? last - i : first + i)
    if (!taken.has(ip)) return ip
  }
  throw new FormError('FORMNET_SUBNET_FULL', `no free address left in ${formatCidr(subnet)}`, { hint: 'remove unused instances or developer peers' })
}

/** True when the two ranges share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + 2 ** (32 - b.prefix) && b.base < a.base + 2 ** (32 - a.prefix)
}

/** True when `inner` lies wholly inside `outer`. */
export function within(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && overlaps(outer, inner)
}

/** A CIDR, or a bare address as its /32 (how `ip -j route` writes host routes); undefined when neither. */
export function parseRoute(text: string): Cidr | undefined {
  try {
    return parseCidr(text.includes('/') ? text : `${text}/32`)
  } catch {
    return undefined
  }
}

/** True when the IPv4 address lies inside the CIDR. */
export function contains(c: Cidr, address: string): boolean {
  const octets = parseIpv4(address)
  if (!octets) return false
  const n = octets.reduce((a, o) => a * 256 + o, 0)
  return n >= c.base && n < c.base + 2 ** (32 - c.prefix)
}
