/**
 * Hybrid logical clock: wall-clock milliseconds plus a counter, so timestamps stay close to real
 * time yet strictly increase on each replica even when the wall clock stalls or steps back.
 */
export interface Timestamp {
  ms: number
  n: number
}

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.ms - b.ms || a.n - b.n
}

export class HybridClock {
  private last: Timestamp = { ms: 0, n: 0 }

  constructor(private readonly wall: () => number = Date.now) {}

  now(): Timestamp {
    const ms = this.wall()
    this.last = ms > this.last.ms ? { ms, n: 0 } : { ms: this.last.ms, n: this.last.n + 1 }
    return this.last
  }

  /** Moves the clock past a timestamp seen from another replica (already checked for skew). */
  observe(remote: Timestamp): void {
    if (compareTimestamps(remote, this.last) > 0) this.last = { ...remote }
  }
}
