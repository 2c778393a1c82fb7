import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { defineSettings, kinds, s, type SettingsOf } from '../../core/settings.js'
import { netCollections } from './lib/collections.js'
import { NetStatusCommand } from './commands/status.js'

/** The default formnet range: 512 node subnets of /24, in a block no common network uses. */
export const DEFAULT_FORMNET_CIDR = '198.18.0.0/15'

const { cidr, interfaceName, tcpMultiaddr } = kinds

export const netSettings = {
  // A node faces the network only when told to ([net] listen, --listen): a devnet stays on this machine.
  listen: s.list(tcpMultiaddr[0], tcpMultiaddr[1], ['/ip4/127.0.0.1/tcp/3010'], 'libp2p listen addresses: loopback, so a devnet stays on this machine; a node other machines dial sets e.g. ["/ip4/0.0.0.0/tcp/3010"] (or --listen)'),
  announce: s.list(tcpMultiaddr[0], tcpMultiaddr[1], [], 'addresses announced to peers (when behind NAT)'),
  bootstrap: s.list(tcpMultiaddr[0], tcpMultiaddr[1], [], 'peers to join; empty: a new network'),
  // RFC 2544's benchmarking block: every node of a network must use the same range.
  formnet_cidr: s.string(DEFAULT_FORMNET_CIDR, "the formnet range, the same on every node of a network. Default: RFC 2544's benchmarking block, which no LAN, cloud VPC, Docker, Kubernetes, Tailscale or carrier NAT uses (10/8, 172.16/12, 192.168/16 and 100.64/10 all are); 512 /24s. A node claims only a subnet that overlaps none of the host's addresses, routes (but the default route) and resolvers, and refuses to start when none is left. Its interface holds its own /32; each peer's subnet is routed on its own.", { check: cidr[0], type: cidr[1] }),
  formnet_port: s.int(51820, 'WireGuard UDP port (bound on every address while formnet runs)', { max: 65535 }),
  bridge_name: s.string('formbr0', "bridge for this node's instances", { check: interfaceName[0], type: interfaceName[1] }),
  bridge_subnet: s.string('', "the instances' bridge subnet; empty: the node's formnet subnet", { check: kinds.cidrOrEmpty[0], type: kinds.cidrOrEmpty[1] }),
  discovery_interval_ms: s.int(10_000, 'how often to re-dial bootstrap peers and look for peers in the DHT (a walk that finds no new peer doubles the wait for the next, up to 32x)'),
  formnet: s.oneOf(['auto', 'on', 'off'] as const, 'auto', 'auto: run formnet when this machine can (root + WireGuard); on: fail to start when it cannot; off'),
  formnet_interface: s.string('formnet0', 'WireGuard interface name (unique per host: UAPI sockets are shared)', { check: interfaceName[0], type: interfaceName[1] }),
  formnet_driver: s.oneOf(['auto', 'kernel', 'userspace'] as const, 'auto', 'auto: the kernel module when present, else wireguard-go | kernel | userspace'),
  formnet_endpoint: s.string('', "host:port peers reach this node's WireGuard at; empty: first non-loopback IPv4", { check: kinds.endpointOrEmpty[0], type: kinds.endpointOrEmpty[1] }),
  formnet_subnet_prefix: s.int(24, 'each node claims a subnet of this size for its instances and developers', { min: 8, max: 30 }),
  formnet_keepalive_s: s.int(25, 'WireGuard persistent keepalive towards other nodes (NAT)', { min: 0, max: 3600 }),
  formnet_reconcile_interval_ms: s.int(30_000, 'how often peers are compared with state besides on every change'),
  // sized for a 2-core, 24 GiB node: the frame buffers of every peer together stay under 128 MiB
  max_connections: s.int(64, 'libp2p connections kept at most (libp2p prunes beyond it)', {
    min: 2,
    max: 100_000,
    before: "What a stranger's libp2p peer can make this node hold (sized for 2 cores, 24 GiB). Each limit hit is logged with the peer and counted under p2p's limitsHit in `form node status --json`.",
  }),
  max_incoming_pending_connections: s.int(16, 'inbound connections still in their handshake'),
  inbound_connection_rate: s.int(10, 'inbound connections a second from one address'),
  max_streams_per_connection: s.int(64, 'streams a peer may open on one connection', { min: 8, max: 10_000 }),
  max_frame_bytes: s.int(4 * 1024 * 1024, 'largest protocol frame; must exceed [state] max_op_bytes + 4096', { min: 64 * 1024, max: 2 ** 31 }),
  max_peer_buffered_bytes: s.int(16 * 1024 * 1024, 'bytes of incoming frames held for one peer'),
  max_buffered_bytes: s.int(128 * 1024 * 1024, 'bytes of incoming frames held for all peers together'),
  stream_read_timeout_ms: s.int(30_000, 'a read waiting longer fails (a stalled blob provider is dropped)'),
  frame_timeout_ms: s.int(120_000, 'a frame must arrive whole within this long of its header'),
  dns: s.oneOf(['on', 'off'] as const, 'on', 'DNS for instances and formnet peers', {
    before: "DNS for instances and formnet peers, served by the node process at its own address (the bridge's and formnet's first address, port 53): `<replica>.fog` and `<build>.fog` from state, owners' records from `form manage dns`, every other name forwarded to the host's resolvers. `.fog` is private to each account: a query is answered in the scope of the account owning its source address. Sources outside formnet, the bridge subnet, loopback and dns_allow_cidrs are dropped unanswered.",
  }),
  dns_port: s.int(53, 'the port DNS is served on', { max: 65535 }),
  dns_listen: s.list(kinds.ipv4Port[0], kinds.ipv4Port[1], [], "ip:port to serve on; empty: the node's own address once it exists"),
  dns_upstreams: s.list(kinds.ipv4MaybePort[0], kinds.ipv4MaybePort[1], [], "resolvers for other names (ip or ip:port); empty: /etc/resolv.conf's"),
  dns_allow_cidrs: s.list(cidr[0], cidr[1], [], 'more sources to answer (e.g. a LAN); keep it private: no open resolver'),
  dns_max_request_bytes: s.int(512, 'a larger query is dropped', { min: 512, max: 4096 }),
  dns_cache_entries: s.int(10_000, 'forwarded answers cached at most (least recently used go first)', { min: 0, max: 1_000_000 }),
  dns_cache_max_ttl_s: s.int(300, 'upstream TTLs are cut to this; negative answers to 30 s', { min: 0, max: 86_400 }),
  dns_rate_per_s: s.int(100, 'queries a second from one source address (beyond: dropped) ...'),
  dns_rate_burst: s.int(200, '... with this burst; 4096 sources tracked at once'),
  dns_max_pending: s.int(256, 'forwarded queries in flight at once (beyond: SERVFAIL)'),
  dns_upstream_timeout_ms: s.int(2000, 'then the next upstream is asked, and after the last: SERVFAIL'),
  dns_tcp_connections: s.int(64, 'DNS over TCP connections open at once (8 from one source at most)', { min: 0, max: 10_000 }),
  dns_tcp_idle_ms: s.int(10_000, 'a TCP connection without a query for this long is closed', { min: 100, max: 600_000 }),
}

export const netConfiguration = defineSettings(netSettings)
export type NetConfig = SettingsOf<typeof netSettings>

export default definePlugin({
  name: 'net',
  version: '0.1.0',
  apiVersion: API_VERSION,
  collections: netCollections,
  description: 'formnet (WireGuard) and the libp2p host',
  commands: [NetStatusCommand],
  services: [
    { name: 'p2p', dependsOn: [], start: async (ctx) => (await import('./service/p2p.js')).startP2P(ctx) },
    { name: 'formnet', dependsOn: ['state'], start: async (ctx) => (await import('./service/formnet.js')).startFormnet(ctx) },
    { name: 'dns', dependsOn: ['state'], start: async (ctx) => (await import('./service/dns.js')).startDns(ctx) },
  ],
  configuration: netConfiguration,
})

export type { P2PHandle } from './service/p2p.js'
export type { FormnetHandle } from './service/formnet.js'
export type { DnsHandle } from './service/dns.js'
export type { DesiredPeer } from './lib/formnet/reconcile.js'

/** The developer side of formnet, loaded on demand (only `form manage formnet-up` needs it). */
export const loadDeveloperFormnet = () => import('./lib/formnet/developer.js')
export const loadWireGuardKeys = () => import('./lib/wireguard/keys.js')
export { FrameReader, isProtocolViolation, writeFrame } from './lib/p2p/framing.js'
export { GOSSIP_TOPICS } from './lib/p2p/topics.js'

/** Addressing and link helpers the hypervisor manager shares with formnet (light: Node built-ins only). */
export { allocateHost, contains, formatCidr, nodeAddress, parseCidr, subnetOf } from './lib/formnet/ipam.js'
export { claimsOf, subnetAddressesInUse } from './lib/formnet/peers.js'
export { addressesOf, ip, linkKind } from './lib/ip.js'
/** `.fog` names owners publish (checked by `form manage dns` and by every node's DNS). */
export { ownerName, parseOwnerRecord } from './lib/dns/zone.js'
export type { BlobStore } from './lib/p2p/blobs.js'
