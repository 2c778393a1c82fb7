import { FormError } from '../../../core/errors.js'

export interface QuotaLimits {
  /** operations one author may submit through the API in a minute ([state] quota_ops_per_minute) */
  opsPerMinute: number
  /** bytes of operations one author may submit through the API in a minute ([state] quota_bytes_per_minute) */
  bytesPerMinute: number
}

interface Window {
  start: number
  ops: number
  bytes: number
}

const MINUTE = 60_000
/** authors remembered at once; past it, finished windows are forgotten */
const MAX_TRACKED = 100_000

/**
 * Per-author quotas on operations submitted to the node API: a wallet cannot make the replicated
 * state grow faster than `opsPerMinute` / `bytesPerMinute`. A batch is charged to the authors its
 * operations name, whole or not at all; an over-quota batch is refused with a 429.
 */
export class AuthorQuota {
  private readonly windows = new Map<string, Window>()
  /** refused batches, for `form node status` */
  refused = 0

  constructor(
    private readonly limits: QuotaLimits,
    private readonly now: () => number = Date.now,
  ) {}

  charge(ops: unknown[]): void {
    const t = this.now()
    const batch = new Map<string, { ops: number; bytes: number }>()
    for (const op of ops) {
      const by = (op as { by?: { address?: unknown } } | null)?.by?.address
      const author = typeof by === 'string' ? by.slice(0, 64).toLowerCase() : 'unknown'
      const b = batch.get(author) ?? { ops: 0, bytes: 0 }
      b.ops++
      b.bytes += Buffer.byteLength(JSON.stringify(op) ?? '')
      batch.set(author, b)
    }
    for (const [author, b] of batch) {
      const w = this.current(author, t)
      const over =
        w.ops + b.ops > this.limits.opsPerMinute
          ? `${w.ops + b.ops} operations; the limit is ${this.limits.opsPerMinute} a minute ([state] quota_ops_per_minute)`
          : w.bytes + b.bytes > this.limits.bytesPerMinute
            ? `${w.bytes + b.bytes} bytes of operations; the limit is ${this.limits.bytesPerMinute} a minute ([state] quota_bytes_per_minute)`
            : undefined
      if (over) {
        this.refused++
        const retryAfterMs = Math.max(0, w.start + MINUTE - t)
        throw new FormError('STATE_QUOTA', `author ${author} would submit ${over}`, {
          httpStatus: 429,
          hint: `wait ${Math.ceil(retryAfterMs / 1000)} s and send again, in smaller batches`,
          details: { author, retryAfterMs },
        })
      }
    }
    for (const [author, b] of batch) {
      const w = this.current(author, t)
      w.ops += b.ops
      w.bytes += b.bytes
      this.windows.set(author, w)
    }
  }

  private current(author: string, t: number): Window {
    const w = this.windows.get(author)
    if (w && t - w.start < MINUTE) return w
    if (this.windows.size >= MAX_TRACKED) for (const [a, x] of this.windows) if (t - x.start >= MINUTE) this.windows.delete(a)
    return { start: t, ops: 0, bytes: 0 }
  }
}
