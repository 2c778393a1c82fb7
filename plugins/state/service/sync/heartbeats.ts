import type { Logger } from '../../../../core/log.js'
import { GOSSIP_TOPICS } from '../../../net/index.js'
import type { P2PHandle } from '../../../net/index.js'
import { MAX_HEARTBEAT_BYTES } from '../../lib/heartbeat.js'
import type { StateStore } from '../../lib/store.js'
import type { Offences } from './offences.js'
import type { SyncStats } from './stats.js'

type Deps = {
  store: Pick<StateStore, 'heartbeat'>
  offences: Pick<Offences, 'strike'>
  stats: SyncStats
  log: Logger
}

/** Judges a heartbeat gossiped by `peer`: a fresh one is passed on, a stale one ignored, an invalid one rejected and counted against the peer. */
export function heartbeatValidator({ store, offences, stats, log }: Deps) {
  return async (data: Uint8Array, peer: string): Promise<'accept' | 'reject' | 'ignore'> => {
    stats.heartbeatsIn++
    stats.heartbeatBytes += data.length
    const invalid = async (reason: string) => {
      log.warn('peer sent an invalid heartbeat', { peer, reason })
      await offences.strike(peer, 1, `an invalid heartbeat (${reason})`)
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
  }
}

/**
 * Heartbeats go by gossip (gossipsub), never into the log: this node publishes its own, and passes
 * on a fresh one (a member's, newer than the last from it) to its gossip mesh, so each node gets a
 * few copies of each, however many nodes there are. Copies are dropped by their hash before any
 * work, stale ones before the signature is checked. Every node subscribed hears every other, even
 * one whose clock is off and which cannot tell members by peer id yet.
 */
export function gossipHeartbeats(p2p: Pick<P2PHandle, 'gossip'>, deps: Deps & { store: Pick<StateStore, 'heartbeat' | 'onHeartbeat'> }): () => void {
  const { store, stats, log } = deps
  const beats = p2p.gossip(GOSSIP_TOPICS.heartbeat, heartbeatValidator(deps))
  const unbeat = store.onHeartbeat((h, source) => {
    if (source !== 'local') return
    stats.heartbeatsOut++
    beats.publish(Buffer.from(JSON.stringify(h))).catch((error: Error) => log.debug('heartbeat not published', { error: error.message }))
  })
  return () => {
    unbeat()
    beats.stop()
  }
}
