import { lstat, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'

/**
 * What a build step changed in the root filesystem, kept so the step can be replayed from cache:
 * a tarball of every path whose inode changed (GNU tar keeps owners, modes, xattrs, device nodes
 * and hard links) and the list of paths it removed. Every change to a file (content, mode, owner,
 * links) moves its inode's ctime, and a replaced file gets a new inode, so (inode, ctime) tells
 * exactly what a step touched.
 */

/** path relative to the root ('' is the root itself) -> identity of its inode at that moment */
export type Snapshot = Map<string, string>

export async function snapshot(root: string): Promise<Snapshot> {
  const out: Snapshot = new Map()
  const walk = async (rel: string) => {
    const st = await lstat(join(root, rel), { bigint: true })
    out.set(rel, `${st.ino}:${st.ctimeNs}:${st.mode}`)
    if (!st.isDirectory()) return
    const names = await readdir(join(root, rel))
    names.sort()
    for (const name of names) await walk(rel ? `${rel}/${name}` : name)
  }
  await walk('')
  return out
}

export interface LayerChanges {
  /** paths added or modified, parents before children */
  changed: string[]
  /** paths removed, children before parents */
  removed: string[]
}

export function compare(before: Snapshot, after: Snapshot): LayerChanges {
  const changed: string[] = []
  for (const [path, id] of after) if (path && before.get(path) !== id) changed.push(path)
  const removed = [...before.keys()].filter((p) => p && !after.has(p)).sort().reverse()
  return { changed, removed }
}

async function tar(args: string[], what: string): Promise<void> {
  const { execa } = await import('execa')
  const r = await execa('tar', args, { reject: false, all: true })
  if (r.exitCode !== 0) throw new FormError('BUILD_LAYER_FAILED', `${what}: ${(r.all ?? '').trim().slice(-500) || `tar exit ${r.exitCode}`}`)
}

const TAR_KEEP = ['--numeric-owner', '--xattrs', '--xattrs-include=*']

/** Writes the changed paths of `root` to `tarball` (uncompressed: layers are local and read soon). */
export async function writeLayer(root: string, changes: LayerChanges, tarball: string): Promise<void> {
  const list = `${tarball}.list`
  await writeFile(list, changes.changed.map((p) => `./${p}\0`).join(''))
  try {
    await tar(['--create', '--file', tarball, ...TAR_KEEP, '--no-recursion', '--null', '--verbatim-files-from', '-C', root, '--files-from', list], 'saving a build step to the cache')
  } finally {
    await rm(list, { force: true })
  }
}

/** Replays a cached step: removes what it removed, then unpacks what it changed. */
export async function applyLayer(root: string, changes: Pick<LayerChanges, 'removed'>, tarball: string): Promise<void> {
  for (const p of changes.removed) {
    if (p.split('/').includes('..')) throw new FormError('BUILD_CACHE_DAMAGED', `a cached step names the path "${p}", which leaves the root`)
    await rm(join(root, p), { recursive: true, force: true })
  }
  await tar(['--extract', '--file', tarball, ...TAR_KEEP, '--preserve-permissions', '-C', root], 'replaying a cached build step')
}
