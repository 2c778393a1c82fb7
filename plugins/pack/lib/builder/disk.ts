import { lstat, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'

const MiB = 2 ** 20
const GiB = 2 ** 30
const BLOCK = 4096
const INODE_SIZE = 256
/** Bytes per inode at the least, as mke2fs's default: after the guest grows the disk it keeps this density. */
const INODE_RATIO = 16384
/**
 * A block group (32768 blocks of 4 KiB). Growing adds groups with as many inodes as the first ones
 * have, so the density is counted per group: a partly filled last group gets a whole group's inodes.
 */
const GROUP = 32768 * BLOCK
const INODES_PER_GROUP = GROUP / INODE_RATIO
/** Inodes 1-10 are reserved, 11 is lost+found. */
const RESERVED_INODES = 11
/** For bitmaps, group descriptors and the ones reserved for growth, lost+found and extended attributes. */
const MARGIN = 64 * MiB
const SLACK = 0.1

/** What a root tree needs in ext4 blocks and inodes (each regular file, directory and long symlink rounded up to 4 KiB). */
export interface TreeUsage {
  /** data, directory and symlink blocks, in bytes */
  bytes: number
  /** inodes, hard links counted once */
  inodes: number
}

/** An ext4 directory block holds entries of 8 bytes + the name rounded up to 4, less a 12-byte checksum tail. */
function directoryBytes(names: string[]): number {
  const entries = names.reduce((sum, n) => sum + 8 + Math.ceil(Buffer.byteLength(n) / 4) * 4, 24)
  const blocks = Math.ceil(entries / (BLOCK - 12))
  // past one block the directory is hashed (an index block) and its leaves are split half full
  return (blocks === 1 ? 1 : Math.ceil(blocks * 2) + 1) * BLOCK
}

/** Walks `root` without following links and adds up what mke2fs -d will allocate for it. */
export async function measureTree(root: string): Promise<TreeUsage> {
  const usage: TreeUsage = { bytes: 0, inodes: 0 }
  const seen = new Set<string>()
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path, { bigint: true })
    if (st.nlink > 1n && !st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`
      if (seen.has(id)) return
      seen.add(id)
    }
    usage.inodes++
    if (st.isDirectory()) {
      const names = await readdir(path)
      usage.bytes += directoryBytes(names)
      for (let i = 0; i < names.length; i += 64) await Promise.all(names.slice(i, i + 64).map((n) => visit(join(path, n))))
    } else if (st.isFile()) {
      usage.bytes += Math.ceil(Number(st.size) / BLOCK) * BLOCK
    } else if (st.isSymbolicLink() && st.size >= 60n) {
      usage.bytes += BLOCK // shorter targets live in the inode
    }
  }
  await visit(root)
  return usage
}

/** The journal mke2fs would give a filesystem of the instance's size (the journal does not grow with it), at most 64 MiB. */
export function journalMiB(diskGb: number): number {
  return diskGb < 2 ? 32 : 64
}

export interface DiskLayout {
  /** the image's length in bytes, a whole number of MiB */
  size: number
  /** true when the estimate proved too small for mke2fs and the image took the whole of DISK */
  fallback?: boolean
  inodes: number
  journalMiB: number
  usage: TreeUsage
}

/** Whole MiB, and whole groups enough to hold the inodes (a group has at most 32768). */
function sizeFor(base: number, inodes: number): number {
  return Math.max(Math.ceil((base + inodes * INODE_SIZE) / MiB) * MiB, Math.ceil(inodes / 32768) * GROUP)
}

/** The tree's inodes, the reserved ones, and 10% to spare. */
function neededInodes(usage: TreeUsage): number {
  return Math.ceil((usage.inodes + RESERVED_INODES) * 1.1) + 64
}

/**
 * Sizes an image from its content: the tree's blocks with 10% slack, inode tables, the journal and
 * a fixed margin, rounded up to a MiB. Inodes: the tree's with 10% to spare, and never fewer than
 * one per 16 KiB of each block group, so the grown filesystem has the density mke2fs gives a disk
 * of its size. Refuses (BUILD_DISK_TOO_SMALL) when even the bare content cannot fit in DISK; when
 * only the margins do not, the image is DISK long and mke2fs decides.
 */
export function layoutDisk(usage: TreeUsage, diskGb: number): DiskLayout {
  if (!Number.isInteger(diskGb) || diskGb < 1) throw new FormError('BUILD_BAD_DISK', `the disk size must be a whole number of GB, not ${diskGb}`)
  const journal = journalMiB(diskGb)
  const needInodes = neededInodes(usage)
  const base = usage.bytes * (1 + SLACK) + journal * MiB + MARGIN
  // the inode tables are part of the size that sets how many inodes there are: both only grow, to a fixed point
  let inodes = needInodes
  let wanted = sizeFor(base, inodes)
  for (let more = inodes; ; inodes = more, wanted = sizeFor(base, inodes)) {
    more = Math.max(needInodes, Math.ceil(wanted / GROUP) * INODES_PER_GROUP)
    if (more === inodes) break
  }
  const limit = diskGb * GiB
  const bare = usage.bytes + needInodes * INODE_SIZE + journal * MiB
  if (bare > limit) throw tooSmall(diskGb, `the files need about ${Math.ceil(bare / MiB)} MiB with the filesystem's inodes and journal`)
  if (wanted <= limit) return { size: wanted, inodes, journalMiB: journal, usage }
  return atDisk({ size: wanted, inodes, journalMiB: journal, usage }, diskGb)
}

/** The layout to retry with when mke2fs finds the estimate too small: the whole of DISK. */
export function fallbackLayout(layout: DiskLayout, diskGb: number): DiskLayout {
  return layout.size < diskGb * GiB ? { ...atDisk(layout, diskGb), fallback: true } : layout
}

/** The same layout on the whole of DISK (the content fits, the margins do not). */
function atDisk(layout: DiskLayout, diskGb: number): DiskLayout {
  const size = diskGb * GiB
  return { ...layout, size, inodes: Math.max(neededInodes(layout.usage), Math.ceil(size / GROUP) * INODES_PER_GROUP) }
}

function tooSmall(diskGb: number, why: string): FormError {
  return new FormError('BUILD_DISK_TOO_SMALL', `the image does not fit in DISK ${diskGb} GB: ${why}`, { hint: 'raise DISK in the Formfile' })
}

/**
 * Writes a root filesystem into a sparse ext4 image sized from its content (layoutDisk) with
 * `mke2fs -d`: no loop device, no mount, so a build never leaves anything mounted on the host. The
 * instance's disk is DISK GB; the guest agent grows the filesystem to it at boot. The file starts
 * as one hole, so the journal is left unwritten (lazy_journal_init): it reads as the zeros mke2fs
 * would have written, and costs no space (mke2fs already leaves the inode tables so on a fresh file).
 */
export async function writeExt4Image(root: string, image: string, diskGb: number, label = 'formroot'): Promise<DiskLayout> {
  const layout = layoutDisk(await measureTree(root), diskGb)
  const failure = await mke2fs(root, image, layout, label)
  if (!failure) return layout
  // a tree the estimate got wrong (say, many extended attributes) still builds: on the whole of DISK, as before sizing from content
  if (failure.space && layout.size < diskGb * GiB) {
    const whole = { ...atDisk(layout, diskGb), fallback: true }
    const again = await mke2fs(root, image, whole, label)
    if (!again) return whole
    return fail(again, whole, diskGb)
  }
  return fail(failure, layout, diskGb)
}

async function mke2fs(root: string, image: string, layout: DiskLayout, label: string): Promise<{ out: string; exitCode: number; space: boolean } | undefined> {
  const fh = await open(image, 'w')
  try {
    await fh.truncate(layout.size)
  } finally {
    await fh.close()
  }
  const { execa } = await import('execa')
  const r = await execa(
    'mke2fs',
    // -T default: no 1 KiB blocks or 128-byte inodes for a small image that becomes a large disk
    ['-q', '-F', '-t', 'ext4', '-T', 'default', '-b', String(BLOCK), '-I', String(INODE_SIZE), '-N', String(layout.inodes), '-J', `size=${layout.journalMiB}`, '-L', label,
      '-E', 'root_owner=0:0,lazy_journal_init=1', '-d', root, image],
    { reject: false, all: true },
  )
  if (r.exitCode === 0) return undefined
  const out = (r.all ?? '').trim()
  return { out, exitCode: r.exitCode ?? -1, space: /Could not allocate|No space|too big for filesystem/.test(out) }
}

function fail(f: { out: string; exitCode: number; space: boolean }, layout: DiskLayout, diskGb: number): never {
  if (f.space) throw tooSmall(diskGb, `mke2fs ran out of space in ${layout.size / MiB} MiB (${Math.ceil(layout.usage.bytes / MiB)} MiB and ${layout.usage.inodes} inodes of files): ${f.out.slice(-300)}`)
  throw new FormError('BUILD_DISK_FAILED', `mke2fs could not write the disk image: ${f.out.slice(-500) || `exit ${f.exitCode}`}`, { hint: 'install e2fsprogs 1.43 or newer' })
}
