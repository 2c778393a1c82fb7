// The shapes several plugins check (interface names, CIDRs, multiaddrs, addresses, hashes), in one
// place: a rule written twice drifts (the interface-name rule was written four times, CIDRs three).
// Plain RegExps with no imports, for code that checks a flag or a request without loading typanion;
// core/validators.ts wraps them for schemas (settings), so both say the same thing.

/** A dotted IPv4 address as text, for the patterns below (octets: parseIpv4). */
const IPV4_TEXT = String.raw`\d{1,3}(?:\.\d{1,3}){3}`

/** A Linux network interface name: at most 15 bytes (IFNAMSIZ less the NUL), no '/' or spaces. */
export const INTERFACE_NAME = /^[a-zA-Z0-9_.-]{1,15}$/
/** A libp2p TCP address, as the node listens on and dials: /ip4|ip6|dns…/<host>/tcp/<port>[/p2p/<peer id>]. */
export const TCP_MULTIADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d+(\/p2p\/\w+)?$/
/** host:port to serve on (a name, an IPv4 address or a bracketed IPv6 one); the groups are the host and the port. */
export const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/
/**
 * A formnet WireGuard endpoint, host:port (an IPv4 address, a bracketed IPv6 one or a DNS name): what
 * [net] formnet_endpoint accepts is what peers accept in the node's record, or they would drop the node.
 */
export const WIREGUARD_ENDPOINT = new RegExp(String.raw`^(${IPV4_TEXT}|\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+):\d{1,5}$`)
/** An account or node address as state keys hold it: 0x and 40 lower-case hex digits. */
export const ADDRESS = /^0x[0-9a-f]{40}$/
/** An address as a person may write it (EIP-55 mixed case allowed). */
export const ADDRESS_ANY_CASE = /^0x[0-9a-fA-F]{40}$/
/** A SHA-256 in hex: content hashes, build ids, digests. */
export const HEX64 = /^[0-9a-f]{64}$/
/** A wallet (secp256k1) signature in hex: r, s and the recovery byte, 65 bytes. */
export const WALLET_SIGNATURE = /^[0-9a-f]{130}$/
/** An Ed25519 signature in hex, 64 bytes: a node key's signature of an op or of its peer id. */
export const ED25519_SIGNATURE = /^[0-9a-f]{128}$/

/** An IPv4 address with an optional port: the groups are the address and the port (octets: parseIpv4). */
export const IPV4_PORT = new RegExp(`^(${IPV4_TEXT})(?::(\\d{1,5}))?$`)

/** The four octets of a dotted IPv4 address (each at most 255), or undefined. */
export function parseIpv4(text: string): number[] | undefined {
  if (!new RegExp(`^${IPV4_TEXT}$`).test(text)) return undefined
  const octets = text.split('.').map(Number)
  return octets.some((o) => o > 255) ? undefined : octets
}

/** The IPv4 nameservers of resolv.conf text, in order. */
export function nameserversIn(text: string): string[] {
  return [...text.matchAll(new RegExp(`^\\s*nameserver\\s+(${IPV4_TEXT})\\s*$`, 'gm'))].map((m) => m[1])
}

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/

/** The octets and prefix of an IPv4 CIDR (a.b.c.d/n, each octet at most 255, n at most 32), or undefined. */
export function parseIpv4Cidr(text: string): { octets: number[]; prefix: number } | undefined {
  const m = IPV4_CIDR.exec(text)
  if (!m) return undefined
  const octets = m.slice(1, 5).map(Number)
  const prefix = Number(m[5])
  return octets.some((o) => o > 255) || prefix > 32 ? undefined : { octets, prefix }
}

/**
 * The IPv4 ranges that are never the public internet a guest may reach: RFC 1918, carrier NAT,
 * link-local, loopback. Instances and build VMs are both kept out of them (each adds its exceptions).
 */
export const PRIVATE_IPV4_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8']
