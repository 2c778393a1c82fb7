import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readdir, readFile, rm, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { parseManifest } from '../../plugins/node/index.js'
import { prepareBase } from '../../plugins/pack/lib/builder/base.js'
import { publishImage } from '../../plugins/pack/lib/builder/publish.js'
import { CACHE } from '../helpers/guest-image.js'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const missing =
  typeof process.getuid === 'function' && process.getuid() !== 0
    ? 'mmdebstrap needs root here'
    : ['mmdebstrap', 'mke2fs', 'debugfs', 'qemu-system-x86_64'].find((tool) => !has(tool))?.concat(' is not installed')

// The base (Debian with systemd, sshd and a kernel) takes minutes to build; it is cached across runs
// like the vmm tests' kernel, so only the first run on a machine pays for it.
const cacheDir = join(CACHE, 'builder')

t.test('a Debian base with a kernel becomes an image that boots to FORM-READY under QEMU', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'root')
  const first = await prepareBase({ suite: 'bookworm', cacheDir }, root)
  for (const f of ['usr/sbin/sshd', 'usr/bin/sudo', 'lib/systemd/systemd', 'sbin/ip']) t.ok(existsSync(join(root, f)), `the base has /${f}`)
  t.ok((await readdir(join(root, 'boot'))).some((n) => n.startsWith('initrd.img-')), 'and a kernel with its initrd')
  const again = await prepareBase({ suite: 'bookworm', cacheDir }, join(dir, 'root2'))
  t.ok(again.cached, 'the second base comes from the cache')
  t.equal(again.key, first.key)
  await rm(join(dir, 'root2'), { recursive: true, force: true })

  const blobs = new BlobStore(join(dir, 'blobs'))
  const { image, manifest } = await publishImage(root, blobs, {
    buildId: 'b'.repeat(64),
    name: 'base-test',
    owner: '0x' + '1'.repeat(40),
    resources: { vcpus: 1, memoryMb: 512, diskGb: 2 },
    expose: [],
    users: [],
    entrypoint: [],
    formfile: '',
  })
  t.same(parseManifest(await readFile(blobs.path(image))), manifest, 'the manifest is a valid form.image/1 the hypervisor manager accepts')
  for (const part of ['kernel', 'initrd', 'disk'] as const) t.equal(await blobs.size(manifest[part]!.sha256), manifest[part]!.size, `the ${part} is in the blob store`)
  const stored = blobs.path(manifest.disk.sha256)
  t.match(spawnSync('debugfs', ['-R', 'stat /etc/systemd/system/multi-user.target.wants/form-ready.service', stored], { encoding: 'utf8' }).stdout, /Fast link dest/, 'the readiness unit is enabled in the disk')
  const allocated = (await stat(stored)).blocks * 512
  t.ok(manifest.disk.size < 2 ** 30, `the image's disk is sized from its content, not DISK 2 GB: ${Math.round(manifest.disk.size / 2 ** 20)} MiB, ${Math.round(allocated / 2 ** 20)} MiB allocated`)

  // Boot it the way the node does: a sparse copy of the disk truncated to diskGb (the stored disk
  // stays as built), direct kernel boot, virtio disk, serial console; wait for the guest agent's line.
  const disk = join(dir, 'disk.raw')
  t.equal(spawnSync('cp', ['--sparse=always', stored, disk]).status, 0)
  await truncate(disk, 2 * 2 ** 30)
  const qemu = spawn('qemu-system-x86_64', [
    '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '512', '-smp', '1', '-nographic', '-no-reboot',
    '-kernel', blobs.path(manifest.kernel.sha256), '-initrd', blobs.path(manifest.initrd!.sha256),
    '-append', `${manifest.cmdline} form.hostname=base-test panic=-1 tsc_early_khz=2000000`,
    '-drive', `file=${disk},format=raw,if=virtio`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => qemu.kill('SIGKILL'))
  let console = ''
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 300_000)
    qemu.stdout!.on('data', (d) => {
      console = (console + d).slice(-1_000_000)
      if (console.includes('FORM-READY')) {
        clearTimeout(timer)
        resolve(true)
      }
    })
    qemu.once('exit', () => (clearTimeout(timer), resolve(false)))
  })
  t.ok(ready, `the guest booted systemd and printed FORM-READY${ready ? '' : `; console tail:\n${console.slice(-3000)}`}`)
  t.match(console, new RegExp(`form-guest: grew the root filesystem on /dev/vda from ${manifest.disk.size / 2 ** 20} MiB to 2048 MiB`), 'the guest agent grew the root filesystem to the whole disk')
  qemu.kill('SIGKILL')
  await new Promise((r) => (qemu.exitCode === null && qemu.signalCode === null ? qemu.once('exit', r) : r(undefined)))
  // the guest was killed, not shut down: e2fsck replays its journal before the superblock is read
  t.ok((spawnSync('e2fsck', ['-fy', disk]).status ?? 8) <= 1, 'e2fsck finds the grown filesystem sound')
  const after = spawnSync('dumpe2fs', ['-h', disk], { encoding: 'utf8' }).stdout
  t.equal(Number(after.match(/^Block count:\s+(\d+)/m)?.[1]) * 4096, 2 * 2 ** 30, 'the filesystem on the instance disk is 2 GiB')
})
