import type { PeerId, Stream } from '@libp2p/interface'
import { FormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import { GOSSIP_TOPICS, isProtocolViolation, writeFrame } from '../../net/index.js'
import { MAX_HEARTBEAT_BYTES } from '../lib/heartbeat.js'
import type { Op } from '../lib/op.js'
import { encodeOpBatches } from '../lib/sync/batches.js'
import { insertGuarded } from '../lib/sync/guarded-insert.js'
import { decodeRanges, encodeRanges, Reconciler } from '../lib/sync/rbsr.js'
import { storeOf } from './state.js'

export const PUSH_PROTOCOL = '/form/state/push/1.0.0'
export const SYNC_PROTOCOL = '/form/state/sync/1.0.0'

const FRAME = { ops: 1, ranges: 2, end: 3, want: 4, fin: 5, have: 7, fetch: 8 } as const
const MAX_OPS_PER_FRAME = 2000
/** a malformed frame weighs as much as this many invalid operations towards a ban */
const VIOLATION_WEIGHT = 5
/** operations read from the store at once when answering a want: memory stays bounded whatever is asked */
const SEND_CHUNK = 256
/**
 * An operation a node stored from a peer is announced to others by hash, not sent: in a mesh each
 * node has it from its author's node already, and flooding made every node receive each operation
 * once per peer (7 deliveries a node at 8 nodes). A node asks for an announced operation only when it
 * has not arrived from elsewhere this long after the announcement...
 */
const ANNOUNCE_GRACE_MS = 1500
/** ...and while operations keep arriving (its copy may be queued behind them), up to this long */
const ANNOUNCE_MAX_WAIT_MS = 30_000
/**
 * Anti-entropy leaves to push an operation this node pushed or announced to the peer (or had from
 * it) less than this long ago, at most one interval: during a bulk write, rounds otherwise re-sent
 * what push was still delivering (184,000 extra copies at 8 nodes).
 */
const PUSH_WINDOW_MS = 30_000
/** push counts as busy for this long after it last carried operations (periodic anti-entropy waits meanwhile) */
const PUSH_QUIET_MS = 1000
/** peers each stored operation is announced to (anti-entropy reaches the rest) */
const ANNOUNCE_FANOUT = 8
/** announced operations awaiting their grace at once; more are left to anti-entropy */
const MAX_ANNOUNCED = 100_000
/** an operation asked of one peer is asked of another only after this long */
const FETCH_TIMEOUT_MS = 10_000

const violation = (message: string) => new FormError('P2P_PROTOCOL', message)
/** operations the store took from a peer, as opposed to written on this node ('local', 'api:…') */
const fromPeer = (source: string | undefined) => source !== undefined && source !== 'local' && !source.startsWith('api:')
const shuffled = <T>(items: T[]): T[] => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

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
 */
export async function startSync(ctx: ServiceContext<unknown, 'state' | 'p2p'>, config: SyncConfig): Promise<RunningService> {
  const state = ctx.use('state')
  const p2p = ctx.use('p2p')
  const store = storeOf(state)
  const log = ctx.log
  const invalid = new Map<string, number>()
  /** when operations last arrived from a peer */
  let lastDelivery = 0
  /** operation batches being inserted from peers right now */
  let receiving = 0
  /** when push last carried operations into or out of this node */
  let lastPush = 0
  /** hash -> when this node stored it and the peers that have it or were offered it by push (in time order) */
  const offered = new Map<string, { at: number; peers: Set<string> }>()
  const pushWindowMs = Math.min(PUSH_WINDOW_MS, config.anti_entropy_interval_ms)
  const offer = (hash: string, peer: string) => offered.get(hash)?.peers.add(peer)
  const offeredRecently = (hash: string, peer: string) => {
    const cutoff = Date.now() - pushWindowMs
    for (const [h, o] of offered) {
      if (o.at >= cutoff) break
      offered.delete(h)
    }
    return offered.get(hash)?.peers.has(peer) ?? false
  }
  /** operations this node sent each peer by anti-entropy (how many peers a joining node took its catch-up from) */
  const syncSentTo = new Map<string, number>()
  const stats = { syncDeclined: 0, syncDeferred: 0, pushedOps: 0, announcedOps: 0, fetchedOps: 0, servedOps: 0, deliveredOps: 0, syncDeliveredOps: 0, duplicateOps: 0, receivedOps: 0, syncRounds: 0, syncBytes: 0, bans: 0, malformedFrames: 0, rejectedOps: 0, heartbeatsIn: 0, heartbeatsFresh: 0, heartbeatsOut: 0, heartbeatBytes: 0 }
  // A frame must hold the largest valid operation, or a valid write could never replicate.
  const maxFrame = p2p.maxFrameBytes
  if (maxFrame < config.max_op_bytes + 4096) {
    throw new FormError('SYNC_CONFIG', `[net] max_frame_bytes (${maxFrame}) must exceed [state] max_op_bytes (${config.max_op_bytes}) by 4096 bytes at least`, {
      hint: 'raise [net] max_frame_bytes or lower [state] max_op_bytes in the operator config',
    })
  }
  const batchBytes = Math.min(config.sync_batch_bytes, maxFrame - 1024)

  // blobs (images: code, ENV values, password hashes) go only to member nodes, known by the peer id their node record binds
  p2p.serveBlobsTo((peer) => store.memberOfPeer(peer) !== undefined)

  const { peerBindingMessage } = await import('../lib/peer-binding.js')
  const proof = Buffer.from(await p2p.sign(peerBindingMessage(state.address))).toString('hex')
  await state.updateNodeRecord({ peerId: p2p.peerId, peerIdProof: proof, multiaddrs: p2p.multiaddrs() })

  /** Counts a peer's offence (invalid operations, malformed frames); past max_invalid_ops it is banned. */
  const strike = async (peer: string, weight: number, reason: string) => {
    const count = (invalid.get(peer) ?? 0) + weight
    invalid.set(peer, count)
    if (count > config.max_invalid_ops) {
      stats.bans++
      await p2p.ban(peer, config.ban_ms, `${reason}; ${count} offences, the limit is ${config.max_invalid_ops} ([state] max_invalid_ops)`)
    }
  }

  /** Inserts operations from a peer; a peer that keeps sending invalid ones is disconnected. */
  const receive = async (ops: unknown[], peer: string, via: 'push' | 'sync') => {
    if (ops.length > MAX_OPS_PER_FRAME) throw violation(`${ops.length} operations in one message; the limit is ${MAX_OPS_PER_FRAME}`)
    lastDelivery = Date.now()
    if (via === 'push') lastPush = lastDelivery
    receiving++
    const result = await insertGuarded(store, ops, peer).finally(() => receiving--)
    stats.deliveredOps += ops.length
    if (via === 'sync') stats.syncDeliveredOps += ops.length
    stats.duplicateOps += result.duplicates
    stats.receivedOps += result.accepted
    if (result.rejected.length) {
      stats.rejectedOps += result.rejected.length
      log.warn('peer sent invalid operations', { peer, rejected: result.rejected.length, first: result.rejected[0].message })
      await strike(peer, result.rejected.length, `${result.rejected.length} invalid operations (${result.rejected[0].code})`)
    }
  }

  /** Runs a protocol exchange; a malformed frame from the peer counts towards its ban. */
  const guarded = async <T>(peer: string, exchange: () => Promise<T>): Promise<T> => {
    try {
      return await exchange()
    } catch (error) {
      if (isProtocolViolation(error)) {
        stats.malformedFrames++
        p2p.count('malformed_frames')
        log.warn('peer broke the sync protocol', { peer, error: (error as Error).message })
        await strike(peer, VIOLATION_WEIGHT, (error as Error).message)
      }
      throw error
    }
  }

  const encodeOps = (ops: Op[]) => [...encodeOpBatches(ops, batchBytes, MAX_OPS_PER_FRAME)]
  const sendFrames = async (stream: Stream, frames: Buffer[]) => {
    for (const frame of frames) {
      stats.syncBytes += frame.length
      await writeFrame(stream, FRAME.ops, frame)
    }
  }
  const sendOps = (stream: Stream, ops: Op[]) => sendFrames(stream, encodeOps(ops))
  const parseHashes = (payload: Buffer): string[] => {
    if (payload.length % 32) throw violation(`a hash list of ${payload.length} bytes is not a multiple of 32`)
    if (payload.length / 32 > config.max_want_ids) throw violation(`${payload.length / 32} hashes in one message; the limit is ${config.max_want_ids} ([state] max_want_ids)`)
    const hashes: string[] = []
    for (let i = 0; i < payload.length; i += 32) hashes.push(payload.subarray(i, i + 32).toString('hex'))
    return hashes
  }
  const parseOps = (payload: Buffer): unknown[] => {
    let value: unknown
    try {
      value = JSON.parse(payload.toString('utf8'))
    } catch {
      throw violation('an ops frame is not JSON')
    }
    if (!Array.isArray(value)) throw violation('an ops frame must hold a JSON array')
    return value
  }

  // Push: one-way streams carrying new operations; duplicates are dropped by the store, so an op is
  // forwarded once per node and floods stop by themselves.
  await p2p.handle(
    PUSH_PROTOCOL,
    (stream, peer) =>
      guarded(peer.toString(), async () => {
        // a push stream lives as long as the connection and may stay silent between batches
        const reader = p2p.reader(stream, peer, { idleBetweenFrames: true })
        for (let frame = await reader.next(); frame; frame = await reader.next()) {
          if (frame.type === FRAME.ops) await receive(parseOps(frame.payload), peer.toString(), 'push')
          else if (frame.type === FRAME.have) announced(parseHashes(frame.payload), peer.toString())
          else if (frame.type === FRAME.fetch) await serveFetch(parseHashes(frame.payload), peer.toString())
          else throw violation(`unexpected frame ${frame.type} on push`)
        }
      }),
    { maxInboundStreams: 4 },
  )
  let pushQueue: { hash: string; op: Op; source?: string }[] = []
  let flushing: Promise<void> | undefined
  // One long-lived push stream per peer: a stream per batch made a busy node refuse streams beyond
  // its inbound limit.
  const pushStreams = new Map<string, Promise<Stream>>()
  const dropPushStream = (peer: string, error?: Error) => {
    const stream = pushStreams.get(peer)
    pushStreams.delete(peer)
    void stream?.then((s) => s.abort(error ?? new Error('push stream replaced')), () => {})
  }
  const pushTo = async (peer: string, send: (stream: Stream) => Promise<void>) => {
    // a stream the peer dropped (it restarted, say) fails on write: one retry on a fresh stream
    for (let attempt = 0; ; attempt++) {
      let stream = pushStreams.get(peer)
      if (!stream) {
        stream = p2p.open(peer, PUSH_PROTOCOL)
        pushStreams.set(peer, stream)
      }
      try {
        await send(await stream)
        return
      } catch (error) {
        dropPushStream(peer, error as Error)
        if (attempt >= 1) throw error
      }
    }
  }
  const flush = async () => {
    while (pushQueue.length) {
      const batch = pushQueue.splice(0, MAX_OPS_PER_FRAME)
      // Pushed only to member nodes (bound to their peer id by a node record): any libp2p peer may
      // connect, and one that stops answering would stall every push behind it. Others, including
      // a node waiting for admission, catch up by anti-entropy.
      const peers = p2p.connectedPeers().filter((peer) => store.memberOfPeer(peer) !== undefined)
      for (const peer of pushStreams.keys()) if (!peers.includes(peer)) dropPushStream(peer)
      // written here: sent whole to every member; stored from a peer: announced to a few
      const own = batch.filter((o) => !fromPeer(o.source)).map((o) => o.op)
      // encoded once for every peer
      const ownFrames = encodeOps(own)
      const relayed = batch.filter((o) => fromPeer(o.source))
      const announceTo = new Set(shuffled(peers).slice(0, ANNOUNCE_FANOUT))
      await Promise.all(
        peers.map(async (peer) => {
          const have = announceTo.has(peer) ? relayed.filter((o) => o.source !== peer).map((o) => Buffer.from(o.hash, 'hex')) : []
          if (!own.length && !have.length) return
          try {
            await pushTo(peer, async (stream) => {
              await sendFrames(stream, ownFrames)
              if (have.length) await writeFrame(stream, FRAME.have, Buffer.concat(have))
            })
            stats.pushedOps += own.length
            stats.announcedOps += have.length
            if (own.length) lastPush = Date.now()
            for (const o of batch) if (!fromPeer(o.source) || announceTo.has(peer)) offer(o.hash, peer)
          } catch (error) {
            log.debug('push failed; anti-entropy will repair it', { peer, error: (error as Error).message })
          }
        }),
      )
    }
  }

  // Announcements: hash -> who announced it first and when; asked of that peer once the grace is over.
  const announcements = new Map<string, { peer: string; at: number }>()
  const fetching = new Map<string, number>()
  let fetchTimer: NodeJS.Timeout | undefined
  const announced = (hashes: string[], peer: string) => {
    // only members' announcements are followed: a stranger's made-up hashes would only cost fetches
    if (store.memberOfPeer(peer) === undefined) return
    const now = Date.now()
    for (const hash of hashes) {
      if (announcements.size >= MAX_ANNOUNCED) break
      // in a mesh the copy from the author's node is usually stored before a relay's announcement
      // comes: known from memory, it costs no store read when the grace is over
      if (offered.has(hash)) continue
      if (!announcements.has(hash) && (fetching.get(hash) ?? 0) < now) announcements.set(hash, { peer, at: now })
    }
    fetchTimer ??= setTimeout(fetchMissing, ANNOUNCE_GRACE_MS).unref()
  }
  const fetchMissing = async () => {
    fetchTimer = undefined
    const now = Date.now()
    // still receiving: the announced copies may be queued behind what is arriving
    const busy = receiving > 0 || now - lastDelivery < ANNOUNCE_GRACE_MS / 2
    const due = [...announcements].filter(([, a]) => now - a.at >= (busy ? ANNOUNCE_MAX_WAIT_MS : ANNOUNCE_GRACE_MS))
    try {
      for (let i = 0; i < due.length; i += SEND_CHUNK) {
        const chunk = due.slice(i, i + SEND_CHUNK)
        const stored = await store.getOps(chunk.map(([hash]) => hash))
        const byPeer = new Map<string, Buffer[]>()
        chunk.forEach(([hash, a], j) => {
          announcements.delete(hash)
          if (stored[j] || (fetching.get(hash) ?? 0) > now) return
          fetching.set(hash, now + FETCH_TIMEOUT_MS)
          const wanted = byPeer.get(a.peer) ?? []
          wanted.push(Buffer.from(hash, 'hex'))
          byPeer.set(a.peer, wanted)
        })
        for (const [peer, wanted] of byPeer) {
          await pushTo(peer, (stream) => writeFrame(stream, FRAME.fetch, Buffer.concat(wanted))).catch((error: Error) => log.debug('fetch not sent; anti-entropy will repair it', { peer, error: error.message }))
          stats.fetchedOps += wanted.length
        }
      }
    } catch (error) {
      log.warn('announced operations not fetched; anti-entropy will repair it', { error: (error as Error).message })
    }
    for (const [hash, until] of fetching) if (until <= now) fetching.delete(hash)
    if (announcements.size) fetchTimer ??= setTimeout(fetchMissing, ANNOUNCE_GRACE_MS / 2).unref()
  }
  const serveFetch = async (hashes: string[], peer: string) => {
    if (store.memberOfPeer(peer) === undefined) return
    for (let i = 0; i < hashes.length; i += SEND_CHUNK) {
      const ops = (await store.getOps(hashes.slice(i, i + SEND_CHUNK))).filter((o): o is Op => o !== undefined)
      if (!ops.length) continue
      await pushTo(peer, (stream) => sendOps(stream, ops))
      stats.servedOps += ops.length
    }
  }

  // Heartbeats go by gossip (gossipsub), never into the log: this node publishes its own, and passes
  // on a fresh one (a member's, newer than the last from it) to its gossip mesh, so each node gets a
  // few copies of each, however many nodes there are. Copies are dropped by their hash before any
  // work, stale ones before the signature is checked. Every node subscribed hears every other, even
  // one whose clock is off and which cannot tell members by peer id yet.
  const beats = p2p.gossip(GOSSIP_TOPICS.heartbeat, async (data, peer) => {
    stats.heartbeatsIn++
    stats.heartbeatBytes += data.length
    const invalid = async (reason: string) => {
      log.warn('peer sent an invalid heartbeat', { peer, reason })
      await strike(peer, 1, `an invalid heartbeat (${reason})`)
      return 'reject' as const
    }
    if (data.length > MAX_HEARTBEAT_BYTES) return invalid(`${data.length} bytes; the limit is ${MAX_HEARTBEAT_BYTES}`)
    let value: unknown
    try {
      value = JSON.parse(Buffer.from(data).toString('utf8'))
    } catch {
      return invalid('not JSON')
    }
    const verdict = store.heartbeat(value, peer)
    if (verdict === 'fresh') {
      stats.heartbeatsFresh++
      return 'accept'
    }
    return typeof verdict === 'object' ? invalid(verdict.invalid) : 'ignore'
  })
  const unbeat = store.onHeartbeat((h, source) => {
    if (source !== 'local') return
    stats.heartbeatsOut++
    beats.publish(Buffer.from(JSON.stringify(h))).catch((error: Error) => log.debug('heartbeat not published', { error: error.message }))
  })
  const unsubscribe = store.onOps((ops, source) => {
    const now = Date.now()
    for (const o of ops) offered.set(o.hash, { at: now, peers: new Set(fromPeer(source) ? [source!] : []) })
    pushQueue.push(...ops.map((o) => ({ ...o, source })))
    flushing ??= flush().finally(() => (flushing = undefined))
  })

  // Anti-entropy: both sides run the same reconciler; the initiator speaks first.
  const reconcile = (stream: Stream, peer: string, initiator: boolean) => guarded(peer, () => reconcileWith(stream, peer, initiator))
  const reconcileWith = async (stream: Stream, peer: string, initiator: boolean) => {
    const reader = p2p.reader(stream, peer)
    // the store keeps this set current: no re-read and sort of every hash per round
    const rec = new Reconciler(await store.idSet(), { maxIdsPerMessage: MAX_OPS_PER_FRAME })
    const have: Uint8Array[] = []
    const need: Uint8Array[] = []
    const send = async (type: number, payload: Uint8Array) => {
      stats.syncBytes += payload.length + 5
      await writeFrame(stream, type, payload)
    }
    if (initiator) await send(FRAME.ranges, encodeRanges(rec.initiate()))
    for (let rounds = 0; ; rounds++) {
      if (rounds > 1000) throw new Error('reconciliation did not converge')
      const frame = await reader.next()
      if (!frame) throw new Error('the peer closed the stream during reconciliation')
      if (frame.type === FRAME.end) break
      if (frame.type !== FRAME.ranges) throw violation(`unexpected frame ${frame.type} during reconciliation`)
      let ranges
      try {
        ranges = decodeRanges(frame.payload)
      } catch (error) {
        throw violation(`a malformed ranges frame: ${(error as Error).message}`)
      }
      const step = rec.respond(ranges)
      have.push(...step.have)
      need.push(...step.need)
      if (!step.reply) {
        await send(FRAME.end, new Uint8Array())
        break
      }
      await send(FRAME.ranges, encodeRanges(step.reply))
    }
    // Each side asks for what it lacks (at most max_want_ids a round: the rest comes next round), then
    // sends what the other lacks plus what it was asked for, a bounded chunk at a time.
    const wanted = need.slice(0, config.max_want_ids)
    await send(FRAME.want, Buffer.concat(wanted.map((id) => Buffer.from(id))))
    const wantFrame = await reader.next()
    if (wantFrame?.type !== FRAME.want || wantFrame.payload.length % 32) throw violation('expected a want frame')
    const asked: string[] = []
    for (let i = 0; i < wantFrame.payload.length && asked.length < config.max_want_ids; i += 32) asked.push(wantFrame.payload.subarray(i, i + 32).toString('hex'))
    const toSend = [...new Set([...have.map((h) => Buffer.from(h).toString('hex')), ...asked])].filter((h) => !offeredRecently(h, peer))
    let sent = 0
    for (let i = 0; i < toSend.length; i += SEND_CHUNK) {
      const ops = (await store.getOps(toSend.slice(i, i + SEND_CHUNK))).filter((o): o is Op => o !== undefined)
      await sendOps(stream, ops)
      sent += ops.length
    }
    if (sent) syncSentTo.set(peer, (syncSentTo.get(peer) ?? 0) + sent)
    await send(FRAME.fin, new Uint8Array())
    for (let frame = await reader.next(); frame && frame.type !== FRAME.fin; frame = await reader.next()) {
      if (frame.type !== FRAME.ops) throw violation(`unexpected frame ${frame.type} after reconciliation`)
      await receive(parseOps(frame.payload), peer, 'sync')
    }
    stats.syncRounds++
    return { sent, wanted: wanted.length }
  }

  // loaded now, not at the first round: until then every batch from a peer costs two store reads to tell copies
  void store.idSet().catch((error: Error) => log.warn('could not read the operation hashes; anti-entropy will retry', { error: error.message }))

  // One reconciliation at a time, in either direction: a node that joins, restarts or resumes after
  // a pause takes the gap from the one peer it reconciles with first, instead of from every peer at
  // once (all of them start a round on connect, or their rounds stalled on it fire together on
  // resume). A request that arrives meanwhile is declined (the stream is closed, which costs the
  // requester a debug line); this node reconciles with that peer itself afterwards, when the gap is
  // closed and the round costs fingerprints only.
  let reconciling: string | undefined
  let active = 0
  const declined = new Set<string>()
  const queued = new Set<string>()
  let draining: Promise<void> | undefined
  await p2p.handle(
    SYNC_PROTOCOL,
    async (stream, peer) => {
      const id = peer.toString()
      // two nodes that start a round with each other at once: the smaller peer id's round goes on
      const crossing = reconciling === id && id < p2p.peerId
      if (active > 0 && !crossing) {
        stats.syncDeclined++
        declined.add(id)
        stream.abort(new Error('busy reconciling with another peer'))
        drain()
        return
      }
      active++
      reconciling = id
      try {
        await reconcile(stream, id, false)
      } finally {
        if (--active === 0) reconciling = undefined
        drain()
      }
    },
    { maxInboundStreams: 2 },
  )

  const syncWith = async (peer: string) => {
    active++
    reconciling = peer
    try {
      const stream = await p2p.open(peer, SYNC_PROTOCOL)
      const r = await reconcile(stream, peer, true)
      await stream.close()
      if (r.sent || r.wanted) log.info('anti-entropy exchanged operations', { peer, sent: r.sent, received: r.wanted })
    } catch (error) {
      log.debug('anti-entropy failed', { peer, error: (error as Error).message })
    } finally {
      if (--active === 0) reconciling = undefined
    }
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref())
  /** Rounds this node starts run one after another, and after any round a peer started. */
  let stopped = false
  const drain = () => {
    draining ??= (async () => {
      while (!stopped && (queued.size || declined.size)) {
        // a peer declined here is reconciled with once this round ends, after a random pause, so
        // that nodes that declined each other do not retry in step
        if (!queued.size) {
          await sleep(50 + Math.random() * 450)
          for (const peer of declined) queued.add(peer)
          declined.clear()
        }
        while (active > 0) await sleep(50)
        const [peer] = queued
        if (peer === undefined) continue
        queued.delete(peer)
        if (p2p.connectedPeers().includes(peer)) await syncWith(peer)
      }
    })().finally(() => {
      draining = undefined
      if (!stopped && (queued.size || declined.size)) drain()
    })
  }
  const enqueue = (peers: string[]) => {
    for (const peer of peers) queued.add(peer)
    drain()
  }
  p2p.onPeer((peer: PeerId, event) => {
    // one side of a new connection starts the round (both did, each sending the other the whole gap)
    if (event === 'connect' && p2p.peerId < peer.toString()) setTimeout(() => enqueue([peer.toString()]), 200).unref()
  })
  enqueue(p2p.connectedPeers())
  // A periodic round waits while push is carrying operations (it would only compete with them for
  // the CPU and find the same gaps push is closing), for at most two more intervals, so that a lost
  // operation is still repaired under a steady stream of writes.
  let lastPeriodic = Date.now()
  let timer: NodeJS.Timeout
  const periodic = () => {
    const now = Date.now()
    if (now - lastPush < PUSH_QUIET_MS && now - lastPeriodic < 3 * config.anti_entropy_interval_ms) {
      stats.syncDeferred++
      timer = setTimeout(periodic, PUSH_QUIET_MS).unref()
      return
    }
    lastPeriodic = now
    enqueue(p2p.connectedPeers())
    timer = setTimeout(periodic, config.anti_entropy_interval_ms).unref()
  }
  timer = setTimeout(periodic, config.anti_entropy_interval_ms).unref()

  ctx.api.get('/sync', () => ({ ...stats, syncSentTo: Object.fromEntries(syncSentTo), reconciling, announcementsPending: announcements.size, peers: p2p.connectedPeers(), invalid: Object.fromEntries(invalid) }))
  return {
    info: () => ({ peers: p2p.connectedPeers().length, receivedOps: stats.receivedOps, deliveredOps: stats.deliveredOps, duplicateOps: stats.duplicateOps, heartbeatsFresh: stats.heartbeatsFresh, rejectedOps: stats.rejectedOps, malformedFrames: stats.malformedFrames, bans: stats.bans }),
    stop: async () => {
      stopped = true
      clearTimeout(timer)
      clearTimeout(fetchTimer)
      unsubscribe()
      unbeat()
      beats.stop()
      await flushing
      await Promise.all([...pushStreams.values()].map((s) => s.then((x) => x.close(), () => {}).catch(() => {})))
      pushStreams.clear()
    },
  }
}
