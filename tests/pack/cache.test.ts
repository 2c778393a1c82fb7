import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, symlink, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { evict, markUsed, scanCache, summarize, type CacheRoot } from '../../plugins/pack/lib/cache.js'

const KiB = 1024

/** Writes `kib` KiB of random bytes (real blocks: the cache counts allocated bytes), last used `agoS` seconds ago. */
async function item(path: string, kib: number, agoS: number): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true })
  const { randomBytes } = await import('node:crypto')
  await writeFile(path, randomBytes(kib * KiB))
  const at = new Date(Date.now() - agoS * 1000)
  await utimes(path, at, at)
  return path
}

async function layout(dir: string) {
  const roots: CacheRoot[] = [
    { dir: join(dir, 'contexts'), kind: 'contexts' },
    { dir: join(dir, 'layers'), kind: 'layers' },
    { dir: join(dir, 'missing'), kind: 'images' },
  ]
  const p = {
    oldest: await item(join(dir, 'layers', 'a.qcow2'), 64, 500),
    old: await item(join(dir, 'contexts', 'b.tar.gz'), 64, 400),
    middle: await item(join(dir, 'layers', 'c.qcow2'), 64, 300),
    recent: await item(join(dir, 'contexts', 'd.tar.gz'), 64, 100),
  }
  // a directory item: its newest entry says when it was used
  const tree = join(dir, 'layers', 'tree')
  await item(join(tree, 'x'), 32, 600)
  await item(join(tree, 'y'), 32, 50)
  await utimes(tree, new Date(Date.now() - 600_000), new Date(Date.now() - 600_000))
  return { roots, p, tree }
}

t.test('the cache is scanned as opaque items per kind, symbolic links neither counted nor followed', async (t) => {
  const dir = t.testdir()
  const { roots } = await layout(dir)
  await item(join(dir, 'outside', 'big'), 256, 1000)
  await symlink(join(dir, 'outside'), join(dir, 'layers', 'link'))
  const items = await scanCache(roots)
  t.equal(items.length, 5, 'four files and one directory; the link is no item and the missing root holds nothing')
  const s = summarize(items)
  t.same(s.kinds.contexts, { items: 2, bytes: 128 * KiB })
  t.same(s.kinds.layers, { items: 3, bytes: 192 * KiB }, 'the directory counts what it holds')
  t.equal(s.bytes, 320 * KiB)
})

t.test('eviction removes least recently used first, down to the limit, never an item in use', async (t) => {
  const dir = t.testdir()
  const { roots, p, tree } = await layout(dir)
  // 320 KiB held; a limit of 200 KiB must free at least 120 KiB
  const inUse = new Set([p.oldest])
  const r = await evict(roots, 200 * KiB, (i) => inUse.has(i.path))
  t.same(
    r.removed.map((i) => i.path),
    [p.old, p.middle],
    'the oldest item not in use goes first, then the next: the directory used 50 s ago is newer than both',
  )
  t.ok(existsSync(p.oldest), 'the item in use stays though it is the oldest')
  t.equal(r.inUse, 1)
  t.equal(r.freed, 128 * KiB)
  t.ok(r.after.bytes <= 200 * KiB, 'the limit holds afterwards')
  t.equal(r.after.bytes, 192 * KiB)
  t.ok(existsSync(tree) && existsSync(p.recent))

  // under the limit: nothing goes
  const again = await evict(roots, 200 * KiB, () => false)
  t.same(again.removed, [], 'a cache within its limit is left alone')
})

t.test('markUsed moves an item to the back of the queue; a limit of 0 keeps only what is in use', async (t) => {
  const dir = t.testdir()
  const { roots, p } = await layout(dir)
  await markUsed(p.oldest)
  const r = await evict(roots, 260 * KiB, () => false)
  t.same(r.removed.map((i) => i.path), [p.old], 'the item just used is no longer the first to go')
  t.ok(existsSync(p.oldest))
  const all = await evict(roots, 0, (i) => i.path === p.recent)
  t.same((await scanCache(roots)).map((i) => i.path), [p.recent], 'prune (limit 0) leaves only the item in use')
  t.equal(all.inUse, 1)
})
