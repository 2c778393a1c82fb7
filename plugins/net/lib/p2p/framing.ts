import type { Stream } from '@libp2p/interface'
import { FormError } from '../../../../core/errors.js'

/**
 * Length-prefixed frames on a libp2p stream: a 1-byte type, a 4-byte big-endian length, the payload.
 * Every read is bounded, so a peer cannot make us buffer more than `maxFrame` bytes per frame.
 */
export class FrameReader {
  private buffer = Buffer.alloc(0)
  private readonly iterator: AsyncIterator<{ subarray(): Uint8Array } | Uint8Array>

  constructor(
    stream: Stream,
    private readonly maxFrame: number,
  ) {
    this.iterator = (stream as unknown as AsyncIterable<{ subarray(): Uint8Array } | Uint8Array>)[Symbol.asyncIterator]()
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buffer.length < n) {
      const { value, done } = await this.iterator.next()
      if (done) return false
      const bytes = value instanceof Uint8Array ? value : value.subarray()
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, bytes]) : Buffer.from(bytes)
    }
    return true
  }

  /** The next frame, or undefined when the peer closed the stream. */
  async next(): Promise<{ type: number; payload: Buffer } | undefined> {
    if (!(await this.fill(5))) {
      if (this.buffer.length) throw new FormError('P2P_PROTOCOL', 'the peer closed the stream in the middle of a frame')
      return undefined
    }
    const type = this.buffer[0]
    const length = this.buffer.readUInt32BE(1)
    if (length > this.maxFrame) throw new FormError('P2P_PROTOCOL', `the peer sent a ${length}-byte frame; the limit is ${this.maxFrame}`)
    if (!(await this.fill(5 + length))) throw new FormError('P2P_PROTOCOL', 'the peer closed the stream in the middle of a frame')
    const payload = this.buffer.subarray(5, 5 + length)
    this.buffer = this.buffer.subarray(5 + length)
    return { type, payload: Buffer.from(payload) }
  }
}

export async function writeFrame(stream: Stream, type: number, payload: Uint8Array): Promise<void> {
  const header = Buffer.alloc(5)
  header[0] = type
  header.writeUInt32BE(payload.length, 1)
  const s = stream as unknown as { send(b: Uint8Array): boolean; onDrain(): Promise<void> }
  if (!s.send(Buffer.concat([header, payload]))) await s.onDrain()
}
