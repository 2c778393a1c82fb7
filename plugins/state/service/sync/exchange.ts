import type { Stream } from '@libp2p/interface'
import type { P2PHandle } from '../../../net/index.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import type { StateStore } from '../../lib/store.js'
import { decodeRanges, encodeRanges, Reconciler } from '../../lib/sync/rbsr.js'
import type { Intake } from './intake.js'
import type { OfferLog } from './offers.js'
import type { Offences } from './offences.js'
import { FRAME, MAX_OPS_PER_FRAME, parseOps, SEND_CHUNK, violation, type OpWriter } from './protocol.js'
import type { SyncStats } from './stats.js'

/** One anti-entropy round with a peer over a stream: both sides run the same reconciler; the initiator speaks first. */
export class AntiEntropyExchange {
  /** operations this node sent each peer by anti-entropy (how many peers a joining node took its catch-up from) */
  readonly sentTo = new Map<string, number>()

  constructor(
    private readonly p2p: Pick<P2PHandle, 'reader'>,
    private readonly store: Pick<StateStore, 'idSet' | 'getOps'>,
    private readonly config: { max_want_ids: number },
    private readonly offers: Pick<OfferLog, 'offeredRecently'>,
    private readonly offences: Pick<Offences, 'guarded'>,
    private readonly intake: Pick<Intake, 'receive'>,
    private readonly writer: OpWriter,
    private readonly stats: SyncStats,
  ) {}

  /** Runs the round; a malformed frame from the peer counts towards its ban. */
  run(stream: Stream, peer: string, initiator: boolean): Promise<{ sent: number; wanted: number }> {
    return this.offences.guarded(peer, () => this.exchange(stream, peer, initiator))
  }

  private async exchange(stream: Stream, peer: string, initiator: boolean): Promise<{ sent: number; wanted: number }> {
    const { config, stats } = this
    const reader = this.p2p.reader(stream, peer)
    // the store keeps this set current: no re-read and sort of every hash per round
    const rec = new Reconciler(await this.store.idSet(), { maxIdsPerMessage: MAX_OPS_PER_FRAME })
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
    const toSend = [...new Set([...have.map((h) => Buffer.from(h).toString('hex')), ...asked])].filter((h) => !this.offers.offeredRecently(h, peer))
    let sent = 0
    for (let i = 0; i < toSend.length; i += SEND_CHUNK) {
      const ops = (await this.store.getOps(toSend.slice(i, i + SEND_CHUNK))).filter((o): o is Op => o !== undefined)
      await this.writer.sendOps(stream, ops)
      sent += ops.length
    }
    if (sent) this.sentTo.set(peer, (this.sentTo.get(peer) ?? 0) + sent)
    await send(FRAME.fin, new Uint8Array())
    for (let frame = await reader.next(); frame && frame.type !== FRAME.fin; frame = await reader.next()) {
      if (frame.type !== FRAME.ops) throw violation(`unexpected frame ${frame.type} after reconciliation`)
      await this.intake.receive(parseOps(frame.payload), peer, 'sync')
    }
    // The round ends when both sides have stored what they were sent. Ending it at fin let the sender
    // start its next round while the receiver was still verifying the batch: that round found the same
    // gap and sent it again (a joining node got its catch-up twice from the one peer).
    await send(FRAME.stored, new Uint8Array())
    const stored = await reader.next()
    if (stored && stored.type !== FRAME.stored) throw violation(`unexpected frame ${stored.type} at the end of reconciliation`)
    stats.syncRounds++
    return { sent, wanted: wanted.length }
  }
}
