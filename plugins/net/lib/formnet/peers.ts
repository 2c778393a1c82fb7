import { WIREGUARD_ENDPOINT } from '../../../../core/patterns.js'
import { parseInstanceKey } from '../../../instances/index.js'
import { decodeKey } from '../wireguard/keys.js'
import { contains, formatCidr, parseCidr, subnetFromKey, winners, within, type Cidr, type Claim } from './ipam.js'
import type { DesiredPeer } from './reconcile.js'

/**
 * What formnet looks like according to state, checked as remote data: a node's record may only
 * route the subnet it won, and a developer peer's address must lie in the subnet of the node that
 * admitted it. Anything else is ignored, so one lying node cannot capture another's addresses.
 */

export interface RecordLike {
  key: string
  value: unknown
  t: { ms: number; n: number }
  hash: string
  author: string
  /** the author's admission order, set by the state store on records only members' count */
  rank?: number
}

export interface FormnetNode {
  node: string
  publicKey: string
  endpoint?: string
  subnet: string
  address: string
}

export interface FormnetPeer {
  /** the node that admitted the developer */
  node: string
  owner: string
  publicKey: string
  address: string
}

export interface FormnetView {
  /** node address -> the subnet it holds (CIDR) */
  subnets: Map<string, string>
  nodes: FormnetNode[]
  peers: FormnetPeer[]
}

function validKey(key: unknown): key is string {
  try {
    return typeof key === 'string' && decodeKey(key).length === 32
  } catch {
    return false
  }
}

/** Subnet claims from `cidrs` records; a record without an admission rank (not a member's) claims nothing. */
export function claimsOf(records: RecordLike[]): Claim[] {
  return records.flatMap((r) => {
    const [subnet, node] = r.key.split('/')
    return subnet && node && r.rank !== undefined ? [{ subnet, node, rank: r.rank, t: r.t, hash: r.hash }] : []
  })
}

/** The formnet range and the size of node subnets: a claim of anything else routes nothing. */
export interface FormnetBounds {
  space: Cidr
  prefix: number
}

export function inBounds(claim: Claim, bounds: FormnetBounds | undefined): boolean {
  if (!bounds) return true
  try {
    const c = subnetFromKey(claim.subnet)
    return c.prefix === bounds.prefix && within(bounds.space, c)
  } catch {
    return false
  }
}

/**
 * With `bounds`, a claim outside the formnet range or of another size is ignored: a peer claiming
 * 0.0.0.0/0 (or a neighbour's /16) would otherwise be given routes over the host's own traffic.
 */
export function formnetView(cidrs: RecordLike[], nodes: RecordLike[], peers: RecordLike[], bounds?: FormnetBounds): FormnetView {
  const subnets = new Map<string, string>()
  const won = [...winners(claimsOf(cidrs).filter((c) => inBounds(c, bounds))).values()].sort((a, b) => a.t.ms - b.t.ms || a.t.n - b.t.n || (a.hash < b.hash ? -1 : 1))
  for (const c of won) {
    if (subnets.has(c.node)) continue // a node holds the earliest subnet it won
    try {
      subnets.set(c.node, formatCidr(subnetFromKey(c.subnet)))
    } catch {
      // a malformed claim key routes nothing
    }
  }
  const view: FormnetView = { subnets, nodes: [], peers: [] }
  for (const r of nodes) {
    const f = (r.value as { formnet?: Partial<FormnetNode> } | null)?.formnet
    const subnet = subnets.get(r.key)
    if (!f || !subnet || f.subnet !== subnet || !validKey(f.publicKey)) continue
    if (f.endpoint !== undefined && !(typeof f.endpoint === 'string' && WIREGUARD_ENDPOINT.test(f.endpoint))) continue
    view.nodes.push({ node: r.key, publicKey: f.publicKey, endpoint: f.endpoint, subnet, address: String(f.address ?? '') })
  }
  for (const r of peers) {
    const [node, owner] = r.key.split('/')
    const v = r.value as { publicKey?: unknown; address?: unknown } | null
    const subnet = subnets.get(node)
    if (!subnet || !v || !validKey(v.publicKey) || typeof v.address !== 'string' || !contains(parseCidr(subnet), v.address)) continue
    view.peers.push({ node, owner, publicKey: v.publicKey, address: v.address })
  }
  return view
}

/** The WireGuard peers a node should have: every other node (its subnet) and every developer (a /32). */
export function nodePeers(view: FormnetView, self: string, keepalive: number): DesiredPeer[] {
  const out = new Map<string, DesiredPeer>()
  for (const n of view.nodes) {
    if (n.node === self) continue
    out.set(n.publicKey, { publicKey: n.publicKey, endpoint: n.endpoint, allowedIps: [n.subnet], persistentKeepalive: keepalive })
  }
  for (const p of view.peers) {
    const cur = out.get(p.publicKey)
    if (cur) cur.allowedIps = [...new Set([...cur.allowedIps, `${p.address}/32`])]
    else out.set(p.publicKey, { publicKey: p.publicKey, allowedIps: [`${p.address}/32`] })
  }
  return [...out.values()]
}

/**
 * The routes a node puts on its formnet interface: every other node's subnet, and the /32 of each
 * developer it admitted (its own subnet is not routed to formnet: it lives on the instance bridge).
 */
export function nodeRoutes(view: FormnetView, self: string): string[] {
  const routes = view.nodes.filter((n) => n.node !== self).map((n) => n.subnet)
  for (const p of view.peers) if (p.node === self) routes.push(`${p.address}/32`)
  return [...new Set(routes)]
}

/** The peers of a developer's interface: every node, reached at its endpoint, routing its subnet. */
export function developerPeers(nodes: FormnetNode[], keepalive: number): DesiredPeer[] {
  return nodes.filter((n) => n.endpoint).map((n) => ({ publicKey: n.publicKey, endpoint: n.endpoint, allowedIps: [n.subnet], persistentKeepalive: keepalive }))
}

/**
 * Addresses of `node`'s subnet already given out: to the developers it admitted (peers/<node>/...)
 * and to the instances it hosts (their observed records, until deleted). Both are records the node
 * wrote itself, so they need no filtering. The formnet join route and the vmm controller allocate
 * from the same subnet and must both see all of them.
 */
export async function subnetAddressesInUse(store: { all(collection: string, prefix?: string): Promise<RecordLike[]> }, node: string): Promise<string[]> {
  const used = new Set<string>()
  for (const r of await store.all('peers', `${node}/`)) {
    const a = (r.value as { address?: unknown } | null)?.address
    if (typeof a === 'string') used.add(a)
  }
  for (const r of await store.all('instances')) {
    const k = parseInstanceKey(r.key)
    const v = r.value as { ip?: unknown; state?: unknown } | null
    if (k?.kind === 'observed' && k.node === node && v?.state !== 'deleted' && typeof v?.ip === 'string') used.add(v.ip)
  }
  return [...used]
}
