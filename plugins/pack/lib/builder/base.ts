import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'

/** What every image starts from: systemd, sshd, sudo and a kernel whose initrd can mount a virtio disk. */
export const BASE_PACKAGES = ['systemd-sysv', 'openssh-server', 'sudo', 'ca-certificates', 'iproute2', 'linux-image-amd64', 'initramfs-tools']

export interface BaseOptions {
  suite: string
  packages?: string[]
  /** apt source lines or mirror URLs for mmdebstrap; empty: its default (deb.debian.org) */
  mirrors?: string[]
  /** cached base tarballs live in <cacheDir>/base */
  cacheDir: string
}

/** The cache key of a base: the same suite, package set and sources give the same base. */
export function baseKey(o: BaseOptions): string {
  const packages = [...new Set(o.packages ?? BASE_PACKAGES)].sort()
  return createHash('sha256').update(JSON.stringify({ v: 1, suite: o.suite, packages, mirrors: o.mirrors ?? [] })).digest('hex').slice(0, 32)
}

async function run(cmd: string, args: string[], what: string): Promise<void> {
  const { execa } = await import('execa')
  const r = await execa(cmd, args, { reject: false, all: true })
  if (r.exitCode !== 0) {
    throw new FormError('BUILD_BASE_FAILED', `${what} failed: ${(r.all ?? '').trim().split('\n').slice(-15).join('\n') || `exit ${r.exitCode}`}`, {
      hint: cmd === 'mmdebstrap' ? 'the node needs mmdebstrap and access to a Debian mirror' : undefined,
      details: { command: [cmd, ...args].join(' ') },
    })
  }
}

/**
 * Unpacks the base root filesystem into `target`, building it with mmdebstrap first when it is not
 * cached. The cache is a tarball written to a temporary name and renamed, so an interrupted build
 * never leaves a half base behind.
 */
export async function prepareBase(o: BaseOptions, target: string): Promise<{ cached: boolean; key: string; tarball: string }> {
  const key = baseKey(o)
  const dir = join(o.cacheDir, 'base')
  const tarball = join(dir, `${o.suite}-${key}.tar`)
  const cached = existsSync(tarball)
  if (!cached) {
    await mkdir(dir, { recursive: true })
    const tmp = `${tarball}.${process.pid}.tmp.tar`
    try {
      const packages = [...new Set(o.packages ?? BASE_PACKAGES)].sort()
      await run('mmdebstrap', ['--variant=minbase', `--include=${packages.join(',')}`, '--quiet', o.suite, tmp, ...(o.mirrors ?? [])], `mmdebstrap ${o.suite}`)
      await rename(tmp, tarball)
    } finally {
      await rm(tmp, { force: true })
    }
  }
  await mkdir(target, { recursive: true })
  await run('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball, '-C', target], 'unpacking the base')
  return { cached, key, tarball }
}
