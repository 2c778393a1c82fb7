import { lstat, readdir, rm, utimes } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * The builder's disk cache as opaque items: every entry (file or directory) directly inside a
 * `kind` directory is one item, whatever it holds (a context tarball, a step layer, a qcow2 file,
 * an image index). Items are evicted least recently used first until the total fits a limit;
 * what a caller says is in use is never touched. Nothing here knows how the builder lays out
 * what it keeps, so the builder can change without this module.
 *
 * "Used" is the later of the item's access and modification times. Filesystems mounted with
 * relatime do not refresh the access time on every read, so users of an item call `markUsed`.
 */

export interface CacheRoot {
  /** a directory whose every entry is an item */
  dir: string
  /** what its items are, for reports: 'contexts', 'layers', ... */
  kind: string
}

export interface CacheItem {
  path: string
  kind: string
  bytes: number
  /** ms since the epoch: the later of its atime and mtime */
  usedAt: number
}

export interface CacheSummary {
  bytes: number
  items: number
  kinds: Record<string, { bytes: number; items: number }>
}

export interface EvictResult {
  /** bytes freed */
  freed: number
  removed: CacheItem[]
  /** items kept because they were in use */
  inUse: number
  /** what is left */
  after: CacheSummary
}

/** Bytes held by a path (a directory recursively); symbolic links count as nothing and are never followed. */
async function usage(path: string): Promise<{ bytes: number; usedAt: number }> {
  const st = await lstat(path).catch(() => undefined)
  if (!st || st.isSymbolicLink()) return { bytes: 0, usedAt: 0 }
  // blocks, not length: sparse qcow2 and disk files hold far less than they claim; directories count what they hold
  let bytes = st.isDirectory() ? 0 : Math.min(st.size, st.blocks * 512)
  let usedAt = Math.max(st.atimeMs, st.mtimeMs)
  if (st.isDirectory()) {
    for (const name of await readdir(path).catch(() => [] as string[])) {
      const u = await usage(join(path, name))
      bytes += u.bytes
      usedAt = Math.max(usedAt, u.usedAt)
    }
  }
  return { bytes, usedAt }
}

/** Every item under the roots (missing roots hold nothing). Symbolic links are not items: they are not ours. */
export async function scanCache(roots: CacheRoot[]): Promise<CacheItem[]> {
  const items: CacheItem[] = []
  for (const root of roots) {
    for (const name of await readdir(root.dir).catch(() => [] as string[])) {
      const path = join(root.dir, name)
      const st = await lstat(path).catch(() => undefined)
      if (!st || st.isSymbolicLink()) continue
      items.push({ path, kind: root.kind, ...(await usage(path)) })
    }
  }
  return items
}

export function summarize(items: CacheItem[]): CacheSummary {
  const kinds: CacheSummary['kinds'] = {}
  for (const i of items) {
    const k = (kinds[i.kind] ??= { bytes: 0, items: 0 })
    k.bytes += i.bytes
    k.items++
  }
  return { bytes: items.reduce((a, i) => a + i.bytes, 0), items: items.length, kinds }
}

/**
 * Removes the least recently used items that are not in use until the cache holds at most
 * `maxBytes` (0: everything not in use). In-use items still count towards the total, so the cache
 * may stay above the limit while they are held.
 */
export async function evict(roots: CacheRoot[], maxBytes: number, inUse: (item: CacheItem) => boolean): Promise<EvictResult> {
  const items = await scanCache(roots)
  let total = items.reduce((a, i) => a + i.bytes, 0)
  const removed: CacheItem[] = []
  let held = 0
  for (const item of [...items].sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break
    if (inUse(item)) {
      held++
      continue
    }
    await rm(item.path, { recursive: true, force: true })
    removed.push(item)
    total -= item.bytes
  }
  const gone = new Set(removed)
  return { freed: removed.reduce((a, i) => a + i.bytes, 0), removed, inUse: held, after: summarize(items.filter((i) => !gone.has(i))) }
}

/** Records that an item was used now (its access time; its content and mtime stay). */
export async function markUsed(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined)
  if (st && !st.isSymbolicLink()) await utimes(path, new Date(), st.mtime).catch(() => {})
}
