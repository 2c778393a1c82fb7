/**
 * Hybrid logical clock: wall-clock milliseconds plus a counter, so timestamps stay close to real
 * time yet strictly increase on each replica even when the wall clock stalls or steps back.
 *
 * Timestamps are bounded integers (MAX_MS, MAX_N): an operation outside them is malformed, and the
 * clock never reaches them itself (the counter carries into the milliseconds), so no remote
 * timestamp can make this node's next own write unrepresentable.
 */
export interface Timestamp {
  ms: number
  n: number
}

/** the largest time a JavaScript Date can hold (year 275760) */
export const MAX_MS = 8.64e15
/** the largest counter: a replica writing 2^31 operations within one millisecond is not one we have */
export const MAX_N = 2 ** 31 - 1

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.ms - b.ms || a.n - b.n
}

export class HybridClock {
  private last: Timestamp = { ms: 0, n: 0 }

  /**
   * @param maxAheadMs how far past the wall clock an observed timestamp may move this clock (the
   *   skew the store accepts); anything further is ignored, so a poisoned timestamp cannot drag it.
   */
  constructor(
    private readonly wall: () => number = Date.now,
    private readonly maxAheadMs = 60_000,
  ) {}

  now(): Timestamp {
    const ms = this.wall()
    if (ms > this.last.ms) this.last = { ms, n: 0 }
    else if (this.last.n < MAX_N) this.last = { ms: this.last.ms, n: this.last.n + 1 }
    else this.last = { ms: this.last.ms + 1, n: 0 }
    return this.last
  }

  /** Moves the clock past a timestamp seen from another replica, never beyond wall time + maxAheadMs. */
  observe(remote: Timestamp): void {
    if (remote.ms > this.wall() + this.maxAheadMs) return
    if (compareTimestamps(remote, this.last) > 0) this.last = { ms: remote.ms, n: Math.min(remote.n, MAX_N) }
  }
}
