import type { Stream } from '@libp2p/interface'
import { FormError } from '../../../../core/errors.js'
import { writeFrame } from '../../../net/index.js'
import type { Op } from '../../lib/op.js'
import { encodeOpBatches } from '../../lib/sync/batches.js'

/** push with opsTo frames: the author's node names the peers it pushed the operations to */
export const PUSH_PROTOCOL = '/form/state/push/1.1.0'
/** push as nodes before 1.1.0 speak it (ops, have, fetch): still served, and used towards them */
export const PUSH_PROTOCOL_1_0 = '/form/state/push/1.0.0'
export const SYNC_PROTOCOL = '/form/state/sync/1.0.0'

export const FRAME = { ops: 1, ranges: 2, end: 3, want: 4, fin: 5, have: 7, fetch: 8, stored: 9, opsTo: 10 } as const
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

/**
 * Largest peer list an opsTo frame carries (about 54 peer ids): with it, a frame holding one
 * operation of [state] max_op_bytes stays under [net] max_frame_bytes, which exceeds that by 4096.
 * An author's node with more member peers sends plain ops frames, and relays announce as before.
 */
export const MAX_OPS_TO_HEADER = 3000
const PEER_ID_TEXT = /^[0-9A-Za-z]{1,128}$/

/** The peer list an opsTo frame starts with, encoded once per batch; undefined when it is too long to carry. */
export function opsToHeader(peers: string[]): Buffer | undefined {
  const header = Buffer.from(JSON.stringify(peers))
  return header.length <= MAX_OPS_TO_HEADER ? header : undefined
}

/** An opsTo frame: the header's length (u32 BE), the peer list, then an ops frame. */
export function encodeOpsTo(header: Buffer, opsFrame: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + header.length + opsFrame.length)
  out.writeUInt32BE(header.length, 0)
  header.copy(out, 4)
  opsFrame.copy(out, 4 + header.length)
  return out
}

export function parseOpsTo(payload: Buffer): { to: string[]; ops: unknown[] } {
  const length = payload.length >= 4 ? payload.readUInt32BE(0) : -1
  if (length < 0 || length > MAX_OPS_TO_HEADER || 4 + length > payload.length) throw violation(`an opsTo frame's peer list must be at most ${MAX_OPS_TO_HEADER} bytes and inside the frame`)
  let to: unknown
  try {
    to = JSON.parse(payload.subarray(4, 4 + length).toString('utf8'))
  } catch {
    throw violation("an opsTo frame's peer list is not JSON")
  }
  if (!Array.isArray(to) || !to.every((p) => typeof p === 'string' && PEER_ID_TEXT.test(p))) throw violation("an opsTo frame's peer list must be an array of peer ids")
  return { to, ops: parseOps(payload.subarray(4 + length)) }
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

  /** opsTo frames naming the peers in `header` (see opsToHeader), each within the frame size ops frames keep to. */
  encodeTo(ops: Op[], header: Buffer): Buffer[] {
    return [...encodeOpBatches(ops, this.batchBytes - 4 - header.length, MAX_OPS_PER_FRAME)].map((frame) => encodeOpsTo(header, frame))
  }

  async sendFrames(stream: Stream, frames: Buffer[], type: number = FRAME.ops): Promise<void> {
    for (const frame of frames) {
      this.stats.syncBytes += frame.length
      await writeFrame(stream, type, frame)
    }
  }

  sendOps(stream: Stream, ops: Op[]): Promise<void> {
    return this.sendFrames(stream, this.encode(ops))
  }
}
