import type { Stream } from '@libp2p/interface'
import { FormError } from '../../../../core/errors.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import { encodeOpBatches } from '../../lib/sync/batches.js'

export const PUSH_PROTOCOL = '/form/state/push/1.0.0'
export const SYNC_PROTOCOL = '/form/state/sync/1.0.0'

export const FRAME = { ops: 1, ranges: 2, end: 3, want: 4, fin: 5, have: 7, fetch: 8, stored: 9 } as const
export const MAX_OPS_PER_FRAME = 2000
/** operations read from the store at once when answering a want: memory stays bounded whatever is asked */
export const SEND_CHUNK = 256

export const violation = (message: string) => new FormError('P2P_PROTOCOL', message)
/** operations the store took from a peer, as opposed to written on this node ('local', 'api:…') */
export const fromPeer = (source: string | undefined) => source !== undefined && source !== 'local' && !source.startsWith('api:')

export function parseHashes(payload: Buffer, maxWantIds: number): string[] {
  if (payload.length % 32) throw violation(`a hash list of ${payload.length} bytes is not a multiple of 32`)
  if (payload.length / 32 > maxWantIds) throw violation(`${payload.length / 32} hashes in one message; the limit is ${maxWantIds} ([state] max_want_ids)`)
  const hashes: string[] = []
  for (let i = 0; i < payload.length; i += 32) hashes.push(payload.subarray(i, i + 32).toString('hex'))
  return hashes
}

export function parseOps(payload: Buffer): unknown[] {
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    throw violation('an ops frame is not JSON')
  }
  if (!Array.isArray(value)) throw violation('an ops frame must hold a JSON array')
  return value
}

/** Writes operations as ops frames of at most `batchBytes`, counting the bytes sent towards `stats.syncBytes`. */
export class OpWriter {
  constructor(
    private readonly batchBytes: number,
    private readonly stats: { syncBytes: number },
  ) {}

  encode(ops: Op[]): Buffer[] {
    return [...encodeOpBatches(ops, this.batchBytes, MAX_OPS_PER_FRAME)]
  }

  async sendFrames(stream: Stream, frames: Buffer[]): Promise<void> {
    for (const frame of frames) {
      this.stats.syncBytes += frame.length
      await writeFrame(stream, FRAME.ops, frame)
    }
  }

  sendOps(stream: Stream, ops: Op[]): Promise<void> {
    return this.sendFrames(stream, this.encode(ops))
  }
}
