import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import type { PrivateKey } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { LevelDatastore } from 'datastore-level'
import { createLibp2p, type Libp2p } from 'libp2p'

export interface HostOptions {
  privateKey: PrivateKey
  listen: string[]
  announce: string[]
  /** where the peer store and DHT records persist */
  datastorePath: string
}

export type FormLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>; ping: ReturnType<ReturnType<typeof ping>>; dht: ReturnType<ReturnType<typeof kadDHT>> }>

export async function createHost(options: HostOptions): Promise<{ node: FormLibp2p; datastore: LevelDatastore }> {
  const datastore = new LevelDatastore(options.datastorePath)
  await datastore.open()
  const node = (await createLibp2p({
    privateKey: options.privateKey,
    datastore,
    addresses: { listen: options.listen, announce: options.announce },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux(JSON.parse(process.env.YAMUX ?? '{}'))],
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
    },
  })) as unknown as FormLibp2p
  return { node, datastore }
}

export { multiaddr }
