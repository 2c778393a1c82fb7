import type { InsertResult, StateStore } from '../store.js'

/** An error that an operation's content caused while it was checked (a date out of range, say), not the disk's. */
const causedByInput = (error: unknown) => error instanceof RangeError || error instanceof TypeError || error instanceof SyntaxError

/**
 * Inserts operations from the network so that one malformed operation whose check throws (instead
 * of being rejected) costs only itself: the batch is retried one operation at a time, and the ones
 * that throw are counted as rejected (OP_MALFORMED), so an honest batch is never dropped with it.
 */
export async function insertGuarded(store: Pick<StateStore, 'insert'>, ops: unknown[], source: string, sentTo?: ReadonlySet<string>): Promise<InsertResult> {
  try {
    return await store.insert(ops, source, sentTo)
  } catch (error) {
    if (!causedByInput(error)) throw error
  }
  const result: InsertResult = { source, accepted: 0, duplicates: 0, held: 0, rejected: [], hashes: [] }
  for (const [index, op] of ops.entries()) {
    try {
      const one = await store.insert([op], source, sentTo)
      result.accepted += one.accepted
      result.duplicates += one.duplicates
      result.held += one.held
      result.hashes.push(...one.hashes)
      result.rejected.push(...one.rejected.map((r) => ({ ...r, index })))
    } catch (error) {
      if (!causedByInput(error)) throw error
      result.rejected.push({ index, code: 'OP_MALFORMED', message: `the operation cannot be checked: ${(error as Error).message}` })
    }
  }
  return result
}
