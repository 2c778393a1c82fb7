import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'
import { netCollections } from './lib/collections.js'
import { NetStatusCommand } from './commands/status.js'

export interface NetConfig {
  listen: string[]
  announce: string[]
  bootstrap: string[]
  formnet_cidr: string
  formnet_port: number
  bridge_name: string
  bridge_subnet: string
  /** how often the node dials its bootstrap peers again and looks for more peers through the DHT */
  discovery_interval_ms: number
  /** auto: run formnet when this machine can (root, WireGuard); on: fail to start when it cannot */
  formnet: 'auto' | 'on' | 'off'
  formnet_interface: string
  formnet_driver: 'auto' | 'kernel' | 'userspace'
  /** host:port other members reach this node's WireGuard at; empty: the first non-loopback IPv4 */
  formnet_endpoint: string
  /** size of the subnet each node claims */
  formnet_subnet_prefix: number
  formnet_keepalive_s: number
  formnet_reconcile_interval_ms: number
  /** libp2p connections kept at most (libp2p prunes beyond it) */
  max_connections: number
  /** inbound connections still in their handshake at once */
  max_incoming_pending_connections: number
  /** inbound connections a second accepted from one address */
  inbound_connection_rate: number
  /** streams a peer may open on one connection */
  max_streams_per_connection: number
  /** the largest frame on a Formation protocol stream; must exceed [state] max_op_bytes plus overhead */
  max_frame_bytes: number
  /** bytes of incoming frames held for one peer at once */
  max_peer_buffered_bytes: number
  /** bytes of incoming frames held for all peers together */
  max_buffered_bytes: number
  /** how long any protocol read waits for the peer's next bytes (a stalled blob provider is dropped after it) */
  stream_read_timeout_ms: number
  /** how long a frame may take to arrive whole once its header came */
  frame_timeout_ms: number
  /** DNS for instances and formnet peers (`.fog` names from state, the rest forwarded) */
  dns: 'on' | 'off'
  dns_port: number
  /** ip:port addresses to serve DNS on; empty: the node's own address (bridge and formnet) */
  dns_listen: string[]
  /** resolvers other names are forwarded to (ip or ip:port); empty: the host's (resolv.conf) */
  dns_upstreams: string[]
  /** sources answered besides formnet, the bridge subnet and loopback; everyone else is dropped */
  dns_allow_cidrs: string[]
  dns_max_request_bytes: number
  dns_cache_entries: number
  dns_cache_max_ttl_s: number
  dns_rate_per_s: number
  dns_rate_burst: number
  dns_max_pending: number
  dns_upstream_timeout_ms: number
  dns_tcp_connections: number
  dns_tcp_idle_ms: number
}

/** The default formnet range: 512 node subnets of /24, in a block no common network uses. */
export const DEFAULT_FORMNET_CIDR = '198.18.0.0/15'

const multiaddr = t.cascade(t.isString(), t.matchesRegExp(/^\/(ip4|ip6|dns|dns4|dns6)\//))

export const netConfiguration = {
  schema: t.isObject(
    {
      listen: t.isArray(multiaddr),
      announce: t.isArray(multiaddr),
      bootstrap: t.isArray(multiaddr),
      formnet_cidr: t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/)),
      formnet_port: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(1, 65535)),
      bridge_name: t.cascade(t.isString(), t.matchesRegExp(/^[a-zA-Z0-9_.-]{1,15}$/)),
      bridge_subnet: t.isString(),
      discovery_interval_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      formnet: t.isEnum(['auto', 'on', 'off'] as const),
      formnet_interface: t.cascade(t.isString(), t.matchesRegExp(/^[a-zA-Z0-9_.-]{1,15}$/)),
      formnet_driver: t.isEnum(['auto', 'kernel', 'userspace'] as const),
      formnet_endpoint: t.cascade(t.isString(), t.matchesRegExp(/^$|^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/)),
      formnet_subnet_prefix: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(8, 30)),
      formnet_keepalive_s: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 3600)),
      formnet_reconcile_interval_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      max_connections: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(2, 100_000)),
      max_incoming_pending_connections: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      inbound_connection_rate: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      max_streams_per_connection: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(8, 10_000)),
      max_frame_bytes: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(64 * 1024, 2 ** 31)),
      max_peer_buffered_bytes: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      max_buffered_bytes: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      stream_read_timeout_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      frame_timeout_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      dns: t.isEnum(['on', 'off'] as const),
      dns_port: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(1, 65535)),
      dns_listen: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/))),
      dns_upstreams: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/))),
      dns_allow_cidrs: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/))),
      dns_max_request_bytes: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(512, 4096)),
      dns_cache_entries: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 1_000_000)),
      dns_cache_max_ttl_s: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 86_400)),
      dns_rate_per_s: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      dns_rate_burst: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      dns_max_pending: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      dns_upstream_timeout_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
      dns_tcp_connections: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(0, 10_000)),
      dns_tcp_idle_ms: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(100, 600_000)),
    },
  ) as t.StrictValidator<unknown, NetConfig>,
  defaults: {
    // A node faces the network only when told to ([net] listen, --listen): a devnet stays on this machine.
    listen: ['/ip4/127.0.0.1/tcp/3010'],
    announce: [],
    bootstrap: [],
    // RFC 2544's benchmarking block: not a LAN, cloud VPC, Docker, Kubernetes or Tailscale range
    // (see templates/operator.toml). Every node of a network must use the same range.
    formnet_cidr: DEFAULT_FORMNET_CIDR,
    formnet_port: 51820,
    bridge_name: 'formbr0',
    bridge_subnet: '',
    discovery_interval_ms: 10_000,
    formnet: 'auto',
    formnet_interface: 'formnet0',
    formnet_driver: 'auto',
    formnet_endpoint: '',
    formnet_subnet_prefix: 24,
    formnet_keepalive_s: 25,
    formnet_reconcile_interval_ms: 30_000,
    // sized for a 2-core, 24 GiB node: the frame buffers of every peer together stay under 128 MiB
    max_connections: 64,
    max_incoming_pending_connections: 16,
    inbound_connection_rate: 10,
    max_streams_per_connection: 64,
    max_frame_bytes: 4 * 1024 * 1024,
    max_peer_buffered_bytes: 16 * 1024 * 1024,
    max_buffered_bytes: 128 * 1024 * 1024,
    stream_read_timeout_ms: 30_000,
    frame_timeout_ms: 120_000,
    dns: 'on',
    dns_port: 53,
    dns_listen: [],
    dns_upstreams: [],
    dns_allow_cidrs: [],
    dns_max_request_bytes: 512,
    dns_cache_entries: 10_000,
    dns_cache_max_ttl_s: 300,
    dns_rate_per_s: 100,
    dns_rate_burst: 200,
    dns_max_pending: 256,
    dns_upstream_timeout_ms: 2000,
    dns_tcp_connections: 64,
    dns_tcp_idle_ms: 10_000,
  } satisfies NetConfig,
}

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
