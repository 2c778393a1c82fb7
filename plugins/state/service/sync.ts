import type { PeerId, Stream } from '@libp2p/interface'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import { storeOf } from './state.js'
import { Announcements } from './sync/announcements.js'
import { AntiEntropyExchange } from './sync/exchange.js'
import { gossipHeartbeats } from './sync/heartbeats.js'
import { Intake } from './sync/intake.js'
import { OfferLog } from './sync/offers.js'
import { Offences } from './sync/offences.js'
import { FRAME, fromPeer, OpWriter, parseHashes, parseOps, parseOpsTo, PUSH_PROTOCOL, PUSH_PROTOCOL_1_0, SYNC_PROTOCOL, violation } from './sync/protocol.js'
import { Pusher } from './sync/push.js'
import { AntiEntropyScheduler } from './sync/scheduler.js'
import { newSyncActivity, newSyncStats } from './sync/stats.js'

export { PUSH_PROTOCOL, SYNC_PROTOCOL } from './sync/protocol.js'

export interface SyncConfig {
  anti_entropy_interval_ms: number
  /** invalid operations a peer may send before it is disconnected */
  max_invalid_ops: number
  ban_ms: number
  max_op_bytes: number
  sync_batch_bytes: number
  max_want_ids: number
}

/**
 * Replication of the state store between nodes: new operations are pushed to connected peers at
 * once, and anti-entropy (range-based set reconciliation over operation hashes) runs on every new
 * connection and periodically, so a node that was away catches up by exchanging only what differs.
 * Each concern is a unit in ./sync/; this function wires them to the store and the libp2p host.
 */
export async function startSync(ctx: ServiceContext<unknown, 'state' | 'p2p'>, config: SyncConfig): Promise<RunningService> {
  const state = ctx.use('state')
  const p2p = ctx.use('p2p')
  const store = storeOf(state)
  const log = ctx.log
  const stats = newSyncStats()
  const activity = newSyncActivity()
  // A frame must hold the largest valid operation, or a valid write could never replicate.
  const maxFrame = p2p.maxFrameBytes
  if (maxFrame < config.max_op_bytes + 4096) {
    throw new FormError('SYNC_CONFIG', `[net] max_frame_bytes (${maxFrame}) must exceed [state] max_op_bytes (${config.max_op_bytes}) by 4096 bytes at least`, {
      hint: 'raise [net] max_frame_bytes or lower [state] max_op_bytes in the operator config',
    })
  }
  const writer = new OpWriter(Math.min(config.sync_batch_bytes, maxFrame - 1024), stats)
  const offers = new OfferLog(config.anti_entropy_interval_ms)
  const offences = new Offences(p2p, config, stats, log)
  const intake = new Intake(store, activity, stats, offences, log)
  const pusher = new Pusher(p2p, store, offers, writer, activity, stats, log)
  const announcements = new Announcements(store, offers, pusher, writer, activity, stats, log)
  const exchange = new AntiEntropyExchange(p2p, store, config, offers, offences, intake, writer, stats)
  const scheduler = new AntiEntropyScheduler(p2p, exchange, config, activity, stats, log)

  // blobs (images: code, ENV values, password hashes) go only to member nodes, known by the peer id their node record binds
  p2p.serveBlobsTo((peer) => store.memberOfPeer(peer) !== undefined)

  const { peerBindingMessage } = await import('../lib/peer-binding.js')
  const proof = Buffer.from(await p2p.sign(peerBindingMessage(state.address))).toString('hex')
  await state.updateNodeRecord({ peerId: p2p.peerId, peerIdProof: proof, multiaddrs: p2p.multiaddrs() })

  // Push: one-way streams carrying new operations; duplicates are dropped by the store, so an op is
  // forwarded once per node and floods stop by themselves. 1.1 adds opsTo frames (the peers an
  // author's node pushed its operations to); 1.0 is still served for nodes that do not speak it.
  const servePush = (version: '1.0' | '1.1') => (stream: Stream, peer: PeerId) =>
    offences.guarded(peer.toString(), async () => {
      const from = peer.toString()
      // a push stream lives as long as the connection and may stay silent between batches
      const reader = p2p.reader(stream, peer, { idleBetweenFrames: true })
      for (let frame = await reader.next(); frame; frame = await reader.next()) {
        if (frame.type === FRAME.ops) await intake.receive(parseOps(frame.payload), from, 'push')
        else if (frame.type === FRAME.opsTo && version === '1.1') {
          const { to, ops } = parseOpsTo(frame.payload)
          // only a member's word spares announcements: a stranger's list is read and ignored
          await intake.receive(ops, from, 'push', store.memberOfPeer(from) !== undefined ? new Set(to) : undefined)
        } else if (frame.type === FRAME.have) announcements.announced(parseHashes(frame.payload, config.max_want_ids), from)
        else if (frame.type === FRAME.fetch) await announcements.serveFetch(parseHashes(frame.payload, config.max_want_ids), from)
        else throw violation(`unexpected frame ${frame.type} on push ${version}`)
      }
    })
  await p2p.handle(PUSH_PROTOCOL, servePush('1.1'), { maxInboundStreams: 4 })
  await p2p.handle(PUSH_PROTOCOL_1_0, servePush('1.0'), { maxInboundStreams: 4 })
  const stopHeartbeats = gossipHeartbeats(p2p, { store, offences, stats, log })
  const unsubscribe = store.onOps((ops, source, sentTo) => {
    const now = Date.now()
    for (const o of ops) offers.stored(o.hash, now, fromPeer(source) ? source : undefined, sentTo)
    pusher.push(ops, source, sentTo)
  })

  // loaded now, not at the first round: until then every batch from a peer costs two store reads to tell copies
  void store.idSet().catch((error: Error) => log.warn('could not read the operation hashes; anti-entropy will retry', { error: error.message }))
  await p2p.handle(SYNC_PROTOCOL, (stream, peer) => scheduler.inbound(stream, peer.toString()), { maxInboundStreams: 2 })
  const offPeer = p2p.onPeer((peer, event) => {
    if (event === 'connect') scheduler.connected(peer.toString())
  })
  scheduler.start()

  ctx.api.get('/sync', () => ({ ...stats, syncSentTo: Object.fromEntries(exchange.sentTo), reconciling: scheduler.reconciling, announcementsPending: announcements.size, peers: p2p.connectedPeers(), invalid: offences.byPeer() }))
  return {
    info: () => ({ peers: p2p.connectedPeers().length, receivedOps: stats.receivedOps, deliveredOps: stats.deliveredOps, duplicateOps: stats.duplicateOps, heartbeatsFresh: stats.heartbeatsFresh, rejectedOps: stats.rejectedOps, malformedFrames: stats.malformedFrames, bans: stats.bans }),
    stop: async () => {
      offPeer()
      scheduler.stop()
      announcements.stop()
      unsubscribe()
      stopHeartbeats()
      await pusher.stop()
    },
  }
}
