import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, copyFile, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { bootableKernel } from '../../../node/index.js'
import { BaseProgressReader, type BaseProgress } from './base-progress.js'

/** What every image starts from: systemd, sshd, sudo and a kernel whose initrd can mount a virtio disk. */
/**
 * The Debian base of every image. nginx is the seed's promise ("instances come with a pre-installed
 * nginx server", enabled and started at boot): it costs about 2 MiB of disk (measured 702 -> 704 MiB).
 */
export const BASE_PACKAGES = ['systemd-sysv', 'openssh-server', 'sudo', 'ca-certificates', 'iproute2', 'linux-image-amd64', 'initramfs-tools', 'nginx']

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

/** Where a base build tells what it does: its whole output (the build log) and its progress (the status). */
export interface BaseHooks {
  onOutput?: (chunk: string) => void
  onProgress?: (p: BaseProgress, phaseChanged: boolean) => void
}

/** How much of a failing command's output the error keeps (the build log has all of it). */
const MAX_ERROR_OUTPUT = 256 * 1024

/** Text as it may be shown (in state, the log): a password in a mirror URL is not. */
const redacted = (text: string) => text.replace(/(\w+:\/\/)[^/@\s]+@/g, '$1***@')
const shown = (cmd: string, args: string[]) => redacted([cmd, ...args].join(' '))

async function run(cmd: string, args: string[], what: string, hooks: BaseHooks = {}): Promise<void> {
  const { execa } = await import('execa')
  const reader = new BaseProgressReader()
  const child = execa(cmd, args, { reject: false, all: true, buffer: false })
  let output = ''
  // whole lines only, so that a URL is never cut in two where the redaction looks
  let pending = ''
  const pass = (raw: string) => {
    const chunk = redacted(raw)
    output = (output + chunk).slice(-MAX_ERROR_OUTPUT)
    hooks.onOutput?.(chunk)
    if (!hooks.onProgress) return
    const r = reader.push(chunk)
    if (r.changed) hooks.onProgress({ ...reader.progress }, r.phaseChanged)
  }
  child.all!.setEncoding('utf8')
  child.all!.on('data', (raw: string) => {
    pending += raw
    const cut = pending.lastIndexOf('\n')
    if (cut === -1 && pending.length < 65536) return
    const whole = cut === -1 ? pending.length : cut + 1
    pass(pending.slice(0, whole))
    pending = pending.slice(whole)
  })
  const r = await child
  if (pending) pass(pending)
  if (r.exitCode !== 0) {
    const tail = output.trim().split('\n').slice(-15)
    const why = reader.errors.length ? reader.errors.join('; ') : tail.at(-1) || (r.signal ? `killed by ${r.signal}` : 'no output')
    throw Object.assign(
      new FormError('BUILD_BASE_FAILED', `${what} failed (exit code ${r.exitCode ?? r.signal}): ${why}\n${tail.join('\n')}`, {
        hint: cmd === 'mmdebstrap' ? 'the node needs mmdebstrap and access to a Debian mirror ([pack] builder_mirrors); the build log has the whole output (`form pack logs`)' : undefined,
        details: { command: shown(cmd, args), instruction: shown(cmd, args) },
      }),
      { output },
    )
  }
}

/**
 * Unpacks the base root filesystem into `target`, building it with mmdebstrap first when it is not
 * cached. The cache is a tarball written to a temporary name and renamed, so an interrupted build
 * never leaves a half base behind.
 */
export async function prepareBase(o: BaseOptions, target: string, hooks: BaseHooks = {}): Promise<{ cached: boolean; key: string; tarball: string }> {
  const key = baseKey(o)
  const dir = join(o.cacheDir, 'base')
  const tarball = join(dir, `${o.suite}-${key}.tar`)
  const cached = existsSync(tarball)
  if (!cached) {
    await mkdir(dir, { recursive: true })
    const tmp = `${tarball}.${process.pid}.tmp.tar`
    try {
      const packages = [...new Set(o.packages ?? BASE_PACKAGES)].sort()
      const args = ['--variant=minbase', `--include=${packages.join(',')}`, '--verbose', o.suite, tmp, ...(o.mirrors ?? [])]
      hooks.onOutput?.(`--> base: ${shown('mmdebstrap', args)}\n`)
      await run('mmdebstrap', args, `mmdebstrap ${o.suite}`, hooks)
      await rename(tmp, tarball)
    } finally {
      await rm(tmp, { force: true })
    }
  }
  await mkdir(target, { recursive: true })
  hooks.onProgress?.({ phase: 'unpacking the base', downloaded: 0, unpacked: 0, configured: 0 }, true)
  await run('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarball, '-C', target], 'unpacking the base')
  return { cached, key, tarball }
}

/** The virtual size of a build's root disk: what all the steps of a build may write, at most. */
export const BUILD_DISK_GB = 16

/**
 * The entry of a build VM (its init=). Fixed and part of the operator's base: it unpacks the
 * build's input disk (the agent and the step scripts, written by the builder) and runs the agent.
 * The builder removes it from every image it makes.
 */
export const BUILD_INIT = 'sbin/form-build-init'
const BUILD_INIT_SCRIPT = `#!/bin/sh
# written by the Formation builder into its Debian base: the entry of a build VM
mkdir -p /run/form/in
if ! tar -xf /dev/vdb -C /run/form/in; then
  echo "form-build-init: cannot read the build's input disk"
  echo o > /proc/sysrq-trigger
fi
exec /bin/sh /run/form/in/agent.sh
`

export interface VmBase {
  key: string
  cached: boolean
  /** raw ext4 of the base root filesystem, BUILD_DISK_GB long and sparse: the bottom of every build's disk */
  disk: string
  /** what QEMU boots: the base kernel (its PVH ELF when it has one) and its initrd */
  kernel: string
  initrd: string
}

async function newestIn(dir: string, prefix: string): Promise<string> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(prefix)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
  if (!names.length) throw new FormError('BUILD_NO_KERNEL', `the base has no /boot/${prefix}*`, { hint: 'the base must include linux-image-amd64 and initramfs-tools' })
  return join(dir, names.at(-1)!)
}

/**
 * The base as a build VM needs it: a raw ext4 disk of the base tree (with the build entry), its
 * kernel and its initrd, each its own file in <cacheDir>/base. Made once from the mmdebstrap
 * tarball, on the host: it is the operator's trusted base, no stranger's input is in it.
 */
export async function prepareVmBase(o: BaseOptions, scratch: string, hooks: BaseHooks = {}): Promise<VmBase> {
  const key = baseKey(o)
  const dir = join(o.cacheDir, 'base')
  const stem = join(dir, `${o.suite}-${key}`)
  const files = { disk: `${stem}.ext4`, kernel: `${stem}.vmlinuz`, initrd: `${stem}.initrd` }
  let cached = Object.values(files).every((f) => existsSync(f))
  if (!cached) {
    const tree = join(scratch, 'base-tree')
    const base = await prepareBase(o, tree, hooks)
    cached = base.cached
    try {
      await writeFile(join(tree, BUILD_INIT), BUILD_INIT_SCRIPT)
      await chmod(join(tree, BUILD_INIT), 0o755)
      const tmp = `${stem}.${process.pid}.tmp`
      await copyFile(await newestIn(join(tree, 'boot'), 'vmlinuz-'), `${tmp}.vmlinuz`)
      await copyFile(await newestIn(join(tree, 'boot'), 'initrd.img-'), `${tmp}.initrd`)
      const fh = await open(`${tmp}.ext4`, 'w')
      await fh.truncate(BUILD_DISK_GB * 2 ** 30)
      await fh.close()
      hooks.onProgress?.({ phase: 'writing the base disk', downloaded: 0, unpacked: 0, configured: 0 }, true)
      await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-T', 'default', '-L', 'formbuild', '-E', 'root_owner=0:0,lazy_journal_init=1', '-d', tree, `${tmp}.ext4`], 'writing the base disk')
      for (const k of ['vmlinuz', 'initrd', 'ext4']) await rename(`${tmp}.${k}`, `${stem}.${k}`)
    } finally {
      await rm(tree, { recursive: true, force: true })
      for (const k of ['vmlinuz', 'initrd', 'ext4']) await rm(`${stem}.${process.pid}.tmp.${k}`, { force: true })
    }
  }
  const kernel = await bootableKernel(files.kernel, `${o.suite}-${key}`, dir)
  return { key, cached, disk: files.disk, kernel: kernel.path, initrd: files.initrd }
}
