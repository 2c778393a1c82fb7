import { readFile } from 'node:fs/promises'
import { HEX64 } from '../../../core/patterns.js'
import { parseInstanceKey } from '../../instances/index.js'
import { parseBuildKey, type BuildStatus } from './builds.js'

/** Where a blob's file is (the p2p service's blob store). */
export interface BlobPaths {
  path(hash: string): string
}

/** What the builder reads of state here: the live records of a collection. */
export interface RecordSource {
  all(collection: string): Promise<{ key: string; value: unknown }[]>
}

/** An image's blobs: its manifest, the kernel, the initrd and the disk (what a manifest names and is a hash). */
export async function imageBlobs(blobs: BlobPaths, image: string): Promise<string[]> {
  const m = await readFile(blobs.path(image), 'utf8')
    .then((t) => JSON.parse(t) as { kernel?: { sha256?: string }; initrd?: { sha256?: string }; disk?: { sha256?: string } })
    .catch(() => undefined)
  return [image, m?.kernel?.sha256, m?.initrd?.sha256, m?.disk?.sha256].filter((h): h is string => typeof h === 'string' && HEX64.test(h))
}

/**
 * Images the builder cache must keep: those a live instance's desired record names (any node may
 * fetch them from here) and the latest image of every build node `me` made; with every blob they use.
 */
export async function liveImages(state: RecordSource, blobs: BlobPaths, me: string): Promise<{ images: Set<string>; blobs: Set<string> }> {
  const images = new Set<string>()
  for (const r of await state.all('instances')) {
    const v = r.value as { image?: unknown; state?: unknown } | null
    if (parseInstanceKey(r.key)?.kind === 'desired' && typeof v?.image === 'string' && v.state !== 'deleted') images.add(v.image)
  }
  for (const r of await state.all('builds')) {
    const k = parseBuildKey(r.key)
    const v = r.value as BuildStatus | null
    if (k?.node === me && typeof v?.image === 'string') images.add(v.image)
  }
  const used = new Set<string>()
  for (const image of images) for (const h of await imageBlobs(blobs, image)) used.add(h)
  return { images, blobs: used }
}
