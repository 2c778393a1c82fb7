import type { Stream } from '@libp2p/interface'
import { FormError } from '../../../../core/errors.js'

/**
 * The bytes the node holds for frames still arriving, bounded per peer and in total. A frame's
 * length is reserved when its header arrives and released when it has been handed over, so ten (or
 * a hundred) connections holding almost-complete frames hold at most `total` bytes between them.
 */
export class ByteBudget {
  private used = 0
  private readonly byPeer = new Map<string, number>()
  private waiters: (() => void)[] = []
  readonly stats = { peakBytes: 0, refusedPeer: 0, waitedTotal: 0, timedOut: 0 }
  /** the most held since the last `takeRecentPeak`: a burst between two looks still counts */
  private recentPeak = 0

  constructor(
    readonly total: number,
    readonly perPeer: number,
    private readonly onLimit?: (event: { peer: string; limit: 'max_peer_buffered_bytes' | 'max_buffered_bytes'; bytes: number }) => void,
  ) {}

  get bytes(): number {
    return this.used
  }

  /** The most bytes held since the last call (at least what is held now). */
  takeRecentPeak(): number {
    const peak = Math.max(this.recentPeak, this.used)
    this.recentPeak = this.used
    return peak
  }

  /**
   * Reserves `n` bytes for `peer` and returns their release. A peer over its own share is refused at
   * once (it has that many frames half-sent); when the node's total is spent, waits for bytes to free
   * up until `signal` aborts.
   */
  async reserve(peer: string, n: number, signal: AbortSignal): Promise<() => void> {
    const mine = this.byPeer.get(peer) ?? 0
    if (mine + n > this.perPeer) {
      this.stats.refusedPeer++
      this.onLimit?.({ peer, limit: 'max_peer_buffered_bytes', bytes: mine + n })
      throw new FormError('P2P_PEER_BUFFER_FULL', `the peer has ${mine} bytes of frames in flight and sent another of ${n}; the limit is ${this.perPeer} ([net] max_peer_buffered_bytes)`)
    }
    if (this.used + n > this.total) {
      this.stats.waitedTotal++
      this.onLimit?.({ peer, limit: 'max_buffered_bytes', bytes: this.used + n })
      while (this.used + n > this.total) {
        if (signal.aborted) {
          this.stats.timedOut++
          throw new FormError('P2P_BUSY', `the node holds ${this.used} bytes of incoming frames; the limit is ${this.total} ([net] max_buffered_bytes)`)
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            signal.removeEventListener('abort', wake)
            resolve()
          }
          this.waiters.push(wake)
          signal.addEventListener('abort', wake, { once: true })
        })
      }
    }
    this.used += n
    this.byPeer.set(peer, (this.byPeer.get(peer) ?? 0) + n)
    this.stats.peakBytes = Math.max(this.stats.peakBytes, this.used)
    this.recentPeak = Math.max(this.recentPeak, this.used)
    let released = false
    return () => {
      if (released) return
      released = true
      this.used -= n
      const left = (this.byPeer.get(peer) ?? n) - n
      if (left > 0) this.byPeer.set(peer, left)
      else this.byPeer.delete(peer)
      const waiters = this.waiters
      this.waiters = []
      for (const w of waiters) w()
    }
  }
}

export interface FrameReaderOptions {
  /** the largest payload accepted; a larger frame is a protocol violation */
  maxFrame: number
  /** every read waits at most this long for the peer's next bytes */
  timeoutMs?: number
  /** a frame must arrive whole within this long of its header (a peer trickling bytes holds its reservation no longer) */
  frameTimeoutMs?: number
  /** a long-lived stream (push) may stay silent between frames; the timeout runs inside a frame only */
  idleBetweenFrames?: boolean
  /** where a frame's bytes are reserved while it arrives, and for whom */
  budget?: ByteBudget
  peer?: string
}

const SMALL_FRAME = 64 * 1024

/** A protocol violation by the peer: it counts towards a ban (a timeout or a full buffer does not). */
export const isProtocolViolation = (error: unknown) => (error as FormError)?.code === 'P2P_PROTOCOL'

/**
 * Length-prefixed frames on a libp2p stream: a 1-byte type, a 4-byte big-endian length, the payload.
 * Every read is bounded in size (`maxFrame`), in time (`timeoutMs`) and, with a budget, in the bytes
 * all peers together can make the node hold.
 */
export class FrameReader {
  private parts: Buffer[] = []
  private length = 0
  private readonly iterator: AsyncIterator<{ subarray(): Uint8Array } | Uint8Array>
  private readonly options: FrameReaderOptions

  constructor(stream: Stream, options: number | FrameReaderOptions) {
    this.options = typeof options === 'number' ? { maxFrame: options } : options
    this.iterator = (stream as unknown as AsyncIterable<{ subarray(): Uint8Array } | Uint8Array>)[Symbol.asyncIterator]()
  }

  /** when the frame being read must be complete (ms since the epoch), if it has such a limit */
  private frameDeadline = Infinity

  /** Reads one more chunk; false when the peer closed the stream. */
  private async pull(timed: boolean): Promise<boolean> {
    const next = this.iterator.next()
    const left = this.frameDeadline - Date.now()
    const timeoutMs = left < (this.options.timeoutMs ?? Infinity) ? Math.max(1, left) : this.options.timeoutMs
    let result: IteratorResult<{ subarray(): Uint8Array } | Uint8Array>
    if (!timed || !timeoutMs) result = await next
    else {
      next.catch(() => {}) // the stream is aborted after a timeout; its pending read then fails
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        const why = timeoutMs === this.options.timeoutMs ? `the peer sent nothing for ${timeoutMs} ms ([net] stream_read_timeout_ms)` : `the peer did not finish a frame within ${this.options.frameTimeoutMs} ms ([net] frame_timeout_ms)`
        timer = setTimeout(() => reject(new FormError('P2P_TIMEOUT', why)), timeoutMs)
      })
      try {
        result = await Promise.race([next, timeout])
      } finally {
        clearTimeout(timer)
      }
    }
    if (result.done) return false
    const bytes = result.value instanceof Uint8Array ? result.value : result.value.subarray()
    this.parts.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    this.length += bytes.byteLength
    return true
  }

  /** Takes the first `n` buffered bytes (copied once, however many chunks they came in). */
  private take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let at = 0
    while (at < n) {
      const part = this.parts[0]
      const want = n - at
      if (part.length <= want) {
        part.copy(out, at)
        at += part.length
        this.parts.shift()
      } else {
        part.copy(out, at, 0, want)
        this.parts[0] = part.subarray(want)
        at += want
      }
    }
    this.length -= n
    return out
  }

  /** Moves buffered bytes into `target` from `at` on, as many as fit; returns how many. */
  private drainInto(target: Buffer, at: number): number {
    let moved = 0
    while (this.parts.length && at + moved < target.length) {
      const part = this.parts[0]
      const want = target.length - at - moved
      if (part.length <= want) {
        part.copy(target, at + moved)
        moved += part.length
        this.parts.shift()
      } else {
        part.copy(target, at + moved, 0, want)
        this.parts[0] = part.subarray(want)
        moved += want
      }
    }
    this.length -= moved
    return moved
  }

  private async fill(n: number, timedFromStart: boolean): Promise<boolean> {
    while (this.length < n) if (!(await this.pull(timedFromStart || this.length > 0))) return false
    return true
  }

  /** The next frame, or undefined when the peer closed the stream. */
  async next(): Promise<{ type: number; payload: Buffer } | undefined> {
    if (!(await this.fill(5, !this.options.idleBetweenFrames))) {
      if (this.length) throw new FormError('P2P_TRUNCATED', 'the peer closed the stream in the middle of a frame')
      return undefined
    }
    const header = this.take(5)
    const type = header[0]
    const length = header.readUInt32BE(1)
    if (length > this.options.maxFrame) throw new FormError('P2P_PROTOCOL', `the peer sent a ${length}-byte frame; the limit is ${this.options.maxFrame} ([net] max_frame_bytes)`)
    const { budget, peer = 'unknown', timeoutMs, frameTimeoutMs } = this.options
    if (frameTimeoutMs) this.frameDeadline = Date.now() + frameTimeoutMs
    // Small frames (heartbeats, single writes) are bounded by streams x 64 KiB without a reservation,
    // so honest traffic keeps flowing while strangers hold the budget with big half-sent frames.
    const release = budget && length > SMALL_FRAME ? await budget.reserve(peer, length, AbortSignal.timeout(timeoutMs ?? 30_000)) : undefined
    try {
      if (length <= SMALL_FRAME) {
        if (!(await this.fill(length, true))) throw new FormError('P2P_TRUNCATED', 'the peer closed the stream in the middle of a frame')
        return { type, payload: this.take(length) }
      }
      // A big frame is copied into its own buffer as it arrives: the transport's chunks are freed at
      // once, and the one allocation is returned whole when the frame is done or dropped.
      const payload = Buffer.allocUnsafeSlow(length)
      let at = this.drainInto(payload, 0)
      while (at < length) {
        if (!(await this.pull(true))) throw new FormError('P2P_TRUNCATED', 'the peer closed the stream in the middle of a frame')
        at += this.drainInto(payload, at)
      }
      return { type, payload }
    } finally {
      this.frameDeadline = Infinity
      release?.()
    }
  }
}

export async function writeFrame(stream: Stream, type: number, payload: Uint8Array): Promise<void> {
  const header = Buffer.alloc(5)
  header[0] = type
  header.writeUInt32BE(payload.length, 1)
  const s = stream as unknown as { send(b: Uint8Array): boolean; onDrain(): Promise<void> }
  if (!s.send(Buffer.concat([header, payload]))) await s.onDrain()
}
