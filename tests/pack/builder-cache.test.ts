import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../core/log.js'
import type { CacheItem } from '../../plugins/pack/lib/cache.js'
import { BuilderCache, type CacheHolds } from '../../plugins/pack/service/builder/cache.js'

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
const KiB = 1024
const OWNER = '0x' + 'ab'.repeat(20)

async function file(path: string, kib: number, agoS: number): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, randomBytes(kib * KiB))
  const at = new Date(Date.now() - agoS * 1000)
  await utimes(path, at, at)
  return path
}

function setup(dir: string, holds: Partial<CacheHolds> = {}, live = { images: new Set<string>(), blobs: new Set<string>() }) {
  const dirs = { contexts: join(dir, 'contexts'), requests: join(dir, 'requests'), images: join(dir, 'images'), cache: join(dir, 'cache') }
  const blobDir = join(dir, 'blobs')
  const blobs = { path: (hash: string) => join(blobDir, hash) }
  const cache = new BuilderCache(dirs, 10 * 2 ** 30, { running: () => 0, context: () => false, request: () => false, ...holds }, blobs, async () => live, log)
  return { dirs, blobs, blobDir, cache }
}
const item = (kind: string, path: string, agoS: number): CacheItem => ({ kind, path, usedAt: Date.now() - agoS * 1000 }) as CacheItem

t.test('builder cache: roots are each owner\'s contexts and requests, the kept images and every kind of the builder\'s own cache', async (t) => {
  const dir = t.testdir()
  const { dirs, cache } = setup(dir)
  await file(join(dirs.contexts, OWNER, 'c1.tar.gz'), 4, 10)
  await file(join(dirs.requests, OWNER, 'r1.json'), 1, 10)
  await file(join(dirs.cache, 'layers', 'l1.qcow2'), 8, 10)
  await file(join(dirs.cache, 'stray-file'), 1, 10)
  t.same(
    (await cache.roots()).map((r) => [r.kind, r.dir.slice(dir.length)]),
    [
      ['contexts', `/contexts/${OWNER}`],
      ['requests', `/requests/${OWNER}`],
      ['images', '/images'],
      ['layers', '/cache/layers'],
    ],
    'a file directly in the builder cache is no kind',
  )
  t.same(cache.current.items, 0, 'nothing scanned yet')
  const scanned = await cache.scan()
  t.equal(scanned.items, 3)
  t.equal(cache.current.items, 0, 'scan alone leaves the summary shown as it was')
  await cache.refresh()
  t.equal(cache.current.items, 3)
})

t.test('builder cache: what is in use', async (t) => {
  let running = 0
  const { cache } = setup(t.testdir(), { running: () => running, context: (p) => p === '/held.tar.gz', request: (p) => p === '/held.json' })
  t.ok(cache.inUse(item('base', '/b', 1e6), ['base']), 'a kind kept whole')
  t.ok(cache.inUse(item('images', '/x/img1', 1e6), [], new Set(['img1'])), 'a live image')
  t.notOk(cache.inUse(item('images', '/x/img2', 0), [], new Set(['img1'])), 'an image no one uses, however recent')
  t.ok(cache.inUse(item('contexts', '/held.tar.gz', 1e6)), 'a queued or running build\'s context')
  t.notOk(cache.inUse(item('contexts', '/other.tar.gz', 0)))
  t.ok(cache.inUse(item('requests', '/new.json', 60)), 'a request written in the last hour')
  t.notOk(cache.inUse(item('requests', '/old.json', 7200)))
  t.ok(cache.inUse(item('requests', '/held.json', 7200)), 'an old request a build holds')
  t.notOk(cache.inUse(item('layers', '/l', 60)), 'no build runs: a layer is not in use')
  running = 1
  t.ok(cache.inUse(item('layers', '/l', 60)), 'a build runs: a layer touched in the last 15 minutes may be one it writes')
  t.notOk(cache.inUse(item('layers', '/l', 3600)))
})

t.test('builder cache: trim evicts what is not in use down to the limit; an evicted image takes the blobs no other image links or live image uses', async (t) => {
  const dir = t.testdir()
  const hash = (s: string) => createHash('sha256').update(s).digest('hex')
  const [shared, own, live] = [hash('shared'), hash('own'), hash('live')]
  const oldImage = hash('old image')
  const keptImage = hash('kept image')
  const { dirs, blobs, blobDir, cache } = setup(dir, {}, { images: new Set([keptImage]), blobs: new Set([keptImage, shared]) })
  await mkdir(blobDir, { recursive: true })
  for (const h of [shared, own, live]) await file(blobs.path(h), 4, 10)
  await writeFile(blobs.path(oldImage), JSON.stringify({ kernel: { sha256: shared }, disk: { sha256: own } }))
  await writeFile(blobs.path(keptImage), JSON.stringify({ kernel: { sha256: shared }, disk: { sha256: live } }))
  await cache.keepImage(oldImage)
  await cache.keepImage(keptImage)
  t.equal((await stat(blobs.path(own))).nlink, 2, 'kept images link their blobs')
  t.ok(existsSync(join(dirs.images, keptImage, live)))
  const at = new Date(Date.now() - 3600_000)
  await utimes(join(dirs.images, oldImage), at, at)
  await file(join(dirs.cache, 'layers', 'l1.qcow2'), 64, 100)

  const result = await cache.trim(0)
  t.same(result.removed.map((r) => r.path.slice(dir.length)).sort(), ['/cache/layers/l1.qcow2', `/images/${oldImage}`].sort(), 'everything not in use goes with a limit of 0')
  t.ok(existsSync(join(dirs.images, keptImage)), 'the live image stays')
  t.notOk(existsSync(blobs.path(own)), 'a blob only the evicted image used is removed')
  t.notOk(existsSync(blobs.path(oldImage)), 'and its manifest')
  t.ok(existsSync(blobs.path(shared)), 'a blob a live image uses stays')
  t.ok(existsSync(blobs.path(live)))
  t.same(cache.current, result.after, 'the summary shown is the one after eviction')
})
