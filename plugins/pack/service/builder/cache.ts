import { link, mkdir, readdir, rm, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Logger } from '../../../../core/log.js'
import { cacheFilesInUse } from '../../lib/builder/build.js'
import { evict, markUsed, scanCache, summarize, type CacheItem, type CacheRoot, type CacheSummary, type EvictResult } from '../../lib/cache.js'
import { imageBlobs, type BlobPaths } from '../../lib/live-images.js'

export interface CacheDirs {
  /** contexts/<owner>/ */
  contexts: string
  /** requests/<owner>/ */
  requests: string
  /** images/<manifest hash>/: hard links to the image's blobs, so the cache sees (and evicts) what they hold */
  images: string
  /** the builder's own cache */
  cache: string
}

/** What the builds queued and running hold (a build that runs holds its base and layer chain, and what it writes now). */
export interface CacheHolds {
  running(): number
  /** whether a queued or running build uses this context file */
  context(path: string): boolean
  /** whether a queued or running build uses this request file */
  request(path: string): boolean
}

/** The builder's cache: contexts, stored requests, kept images and the builder's own cache, evicted least recently used. */
export class BuilderCache {
  private summary: CacheSummary = { bytes: 0, items: 0, kinds: {} }
  private evicting: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly dirs: CacheDirs,
    readonly maxBytes: number,
    private readonly holds: CacheHolds,
    private readonly blobs: BlobPaths,
    private readonly liveImages: () => Promise<{ images: Set<string>; blobs: Set<string> }>,
    private readonly log: Logger,
  ) {}

  /** what `form node status` shows: as of the last scan or eviction */
  get current(): CacheSummary {
    return this.summary
  }

  async roots(): Promise<CacheRoot[]> {
    const dirs = this.dirs
    const roots: CacheRoot[] = []
    for (const owner of await readdir(dirs.contexts).catch(() => [] as string[])) roots.push({ dir: join(dirs.contexts, owner), kind: 'contexts' })
    for (const owner of await readdir(dirs.requests).catch(() => [] as string[])) roots.push({ dir: join(dirs.requests, owner), kind: 'requests' })
    roots.push({ dir: dirs.images, kind: 'images' })
    // the builder's cache is opaque here: each of its directories is a kind (base, layers, images, ...)
    for (const kind of await readdir(dirs.cache, { withFileTypes: true }).catch(() => [])) if (kind.isDirectory()) roots.push({ dir: join(dirs.cache, kind.name), kind: kind.name })
    return roots
  }

  /** What the cache holds now, scanned afresh. */
  async scan(): Promise<CacheSummary> {
    return summarize(await scanCache(await this.roots()))
  }

  /** Scans the cache afresh into the summary `form node status` shows. */
  async refresh(): Promise<void> {
    this.summary = await this.scan()
  }

  /** A queued or running build holds its context and request; a running build holds its base and layer chain, and what it writes now. */
  inUse(item: CacheItem, keepKinds: string[] = [], liveImages = new Set<string>()): boolean {
    if (keepKinds.includes(item.kind)) return true
    if (item.kind === 'images') return liveImages.has(basename(item.path))
    if (item.kind === 'contexts') return this.holds.context(item.path)
    // a request is written a moment before its owner's state record names it
    if (item.kind === 'requests') return item.usedAt > Date.now() - 3600_000 || this.holds.request(item.path)
    // a layer being written is not held yet; anything touched in the last 15 minutes may be it
    return this.holds.running() > 0 && (cacheFilesInUse().has(item.path) || item.usedAt > Date.now() - 15 * 60_000)
  }

  /** Evicts down to `maxBytes` (one eviction at a time), and keeps the summary `form node status` shows. */
  trim(maxBytes: number, keepKinds: string[] = []): Promise<EvictResult> {
    const next = this.evicting.then(async () => {
      const live = await this.liveImages()
      const result = await evict(await this.roots(), maxBytes, (item) => this.inUse(item, keepKinds, live.images))
      for (const item of result.removed) if (item.kind === 'images') await this.dropImageBlobs(basename(item.path), live.blobs)
      this.summary = result.after
      if (result.removed.length) this.log.info('evicted from the builder cache', { freed: result.freed, items: result.removed.length, limit: maxBytes })
      return result
    })
    this.evicting = next.catch((error: Error) => this.log.warn('could not evict from the builder cache', { error: error.message }))
    return next
  }

  /** Links a built image's blobs under images/<image>/ (or marks it used again when it was reused). */
  async keepImage(image: string): Promise<void> {
    const dir = join(this.dirs.images, image)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    for (const hash of await imageBlobs(this.blobs, image)) await link(this.blobs.path(hash), join(dir, hash)).catch(() => {})
    await markUsed(dir)
  }

  /** Removes the blobs of an evicted image that no kept image links and no live image uses. */
  private async dropImageBlobs(image: string, keep: Set<string>): Promise<void> {
    for (const hash of await imageBlobs(this.blobs, image)) {
      const path = this.blobs.path(hash)
      const links = await stat(path).then((st) => st.nlink, () => 0)
      // 1: the blob store alone holds it (no other image directory links it)
      if (links === 1 && !keep.has(hash)) await rm(path, { force: true })
    }
  }
}
