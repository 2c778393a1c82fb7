/**
 * Operations encoded as JSON arrays of at most `maxBytes` bytes and `maxOps` operations each, split
 * by bytes, not by count: 250 operations of 60 KB go as several frames, never as one that a peer must
 * refuse. An operation larger than `maxBytes` on its own goes alone (the frame limit is above the
 * largest valid operation, see the sync service).
 */
export function* encodeOpBatches(ops: readonly unknown[], maxBytes: number, maxOps: number): Generator<Buffer> {
  let parts: string[] = []
  let size = 2
  for (const op of ops) {
    const json = JSON.stringify(op)
    const bytes = Buffer.byteLength(json) + 1
    if (parts.length && (size + bytes > maxBytes || parts.length >= maxOps)) {
      yield Buffer.from(`[${parts.join(',')}]`)
      parts = []
      size = 2
    }
    parts.push(json)
    size += bytes
  }
  if (parts.length) yield Buffer.from(`[${parts.join(',')}]`)
}
