import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { ConnectionGater, PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { LevelDatastore } from 'datastore-level'
import { createLibp2p, type Libp2p } from 'libp2p'
import { GOSSIP_TOPICS } from './topics.js'

export interface HostOptions {
  privateKey: PrivateKey
  listen: string[]
  announce: string[]
  /** where the peer store and DHT records persist */
  datastorePath: string
  /** connection and stream limits (see [net] in templates/operator.toml); libp2p's defaults when absent */
  limits?: HostLimits
  /** refuses banned peers and addresses (see the p2p service) */
  gater?: ConnectionGater
  /** options for outgoing TCP sockets, e.g. `localAddress` (tests dial from several loopback addresses) */
  dialOpts?: Record<string, unknown>
}

/** the largest gossip message batch a peer may send (heartbeats are under 1 KiB each) */
const MAX_GOSSIP_RPC_BYTES = 256 * 1024

export interface HostLimits {
  max_connections: number
  max_incoming_pending_connections: number
  /** inbound connections a second from one address */
  inbound_connection_rate: number
  max_streams_per_connection: number
}

export type FormLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>; ping: ReturnType<ReturnType<typeof ping>>; dht: ReturnType<ReturnType<typeof kadDHT>>; pubsub: ReturnType<ReturnType<typeof gossipsub>> }>

export async function createHost(options: HostOptions): Promise<{ node: FormLibp2p; datastore: LevelDatastore }> {
  const l = options.limits
  const datastore = new LevelDatastore(options.datastorePath)
  await datastore.open()
  const node = (await createLibp2p({
    privateKey: options.privateKey,
    datastore,
    addresses: { listen: options.listen, announce: options.announce },
    transports: [tcp({ dialOpts: options.dialOpts as never })],
    connectionEncrypters: [noise()],
    // The stream window stays at its 256 KiB minimum until the reader keeps up, and grows to 1 MiB
    // at most: bytes a peer sends on streams nobody reads are bounded by windows x streams.
    streamMuxers: [yamux({ ...(l ? { maxInboundStreams: l.max_streams_per_connection, maxOutboundStreams: l.max_streams_per_connection } : {}), streamOptions: { maxStreamWindowSize: 1024 * 1024 } })],
    connectionGater: options.gater,
    // libp2p pings each connection every 10 s and aborts it when a ping outlasts an adaptive timeout
    // that settles at its 5 s floor on a fast link. A ping queues behind the data already in flight,
    // so on a loaded host an image transfer's connection was aborted mid-blob (twice in a row, at
    // load ~19, in bench/ship.ts). A dead peer is judged by its heartbeats, not by this ping; the floor
    // only bounds how long a silently dead connection is kept.
    connectionMonitor: { pingTimeout: { minTimeout: 30_000 } },
    connectionManager: l ? { maxConnections: l.max_connections, maxIncomingPendingConnections: l.max_incoming_pending_connections, inboundConnectionThreshold: l.inbound_connection_rate } : undefined,
    services: {
      identify: identify(),
      // kad-dht requires ping
      ping: ping(),
      dht: kadDHT({
        protocol: '/form/kad/1.0.0',
        clientMode: false,
        // Formation runs on private networks (formnet, LANs, loopback in tests); the default mapper
        // drops private addresses and lookups then find nobody.
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true,
      }),
      // Gossip carries messages that sign themselves (heartbeats): no libp2p signature, and a message
      // is known by its content's hash, so a copy is dropped before any validation work.
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictNoSign',
        msgIdFn: (message) => createHash('sha256').update(message.data).digest(),
        allowPublishToZeroTopicPeers: true,
        fallbackToFloodsub: false,
        emitSelf: false,
        allowedTopics: Object.values(GOSSIP_TOPICS),
        maxInboundDataLength: MAX_GOSSIP_RPC_BYTES,
        decodeRpcLimits: { maxSubscriptions: 16, maxMessages: 256, maxIhaveMessageIDs: 5000, maxIwantMessageIDs: 5000, maxIdontwantMessageIDs: 5000, maxControlMessages: 64, maxPeerInfos: 16 },
      }),
    },
  })) as unknown as FormLibp2p
  return { node, datastore }
}

export { multiaddr }
