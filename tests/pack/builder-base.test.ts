import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { parseManifest } from '../../plugins/node/index.js'
import { BUILD_INIT, prepareVmBase } from '../../plugins/pack/lib/builder/base.js'
import { buildImage } from '../../plugins/pack/lib/builder/build.js'
import { parseFormfile } from '../../plugins/pack/lib/formfile/index.js'
import { bootImage, packDirectory } from '../helpers/builder.js'
import { CACHE } from '../helpers/guest-image.js'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const missing =
  typeof process.getuid === 'function' && process.getuid() !== 0
    ? 'mmdebstrap needs root here'
    : ['mmdebstrap', 'mke2fs', 'debugfs', 'qemu-system-x86_64', 'qemu-img', 'iptables'].find((tool) => !has(tool))?.concat(' is not installed')

// The base (Debian with systemd, sshd and a kernel) takes minutes to build; it is cached across runs
// like the vmm tests' kernel, so only the first run on a machine pays for it.
const cacheDir = join(CACHE, 'builder')

t.test('a Debian base becomes a build VM base, and an image built on it boots to FORM-READY under QEMU', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const dir = t.testdir()
  const first = await prepareVmBase({ suite: 'bookworm', cacheDir }, dir)
  for (const f of [first.disk, first.kernel, first.initrd]) t.ok(existsSync(f), `the base has ${f.split('/').pop()}`)
  t.match(spawnSync('debugfs', ['-R', 'stat /usr/sbin/sshd', first.disk], { encoding: 'utf8' }).stdout, /Type: regular/, 'the base disk holds sshd')
  t.match(spawnSync('debugfs', ['-R', `cat /${BUILD_INIT}`, first.disk], { encoding: 'utf8' }).stdout, /agent\.sh/, 'and the build entry')
  const again = await prepareVmBase({ suite: 'bookworm', cacheDir }, dir)
  t.ok(again.cached, 'the second base comes from the cache')
  t.equal(again.key, first.key)

  const blobs = new BlobStore(join(dir, 'blobs'))
  const ctx = join(dir, 'ctx')
  await mkdir(ctx)
  const formfile = parseFormfile('NAME base-test\nUSER username:ada lock_passwd:true\nDISK 5\n').formfile!
  const { image, manifest } = await buildImage({ formfile, owner: '0x' + '1'.repeat(40), buildId: 'b'.repeat(64), context: await packDirectory(ctx), workDir: join(dir, 'w'), cacheDir, blobs, suite: 'bookworm' })
  t.same(parseManifest(await readFile(blobs.path(image))), manifest, 'the manifest is a valid form.image/1 the hypervisor manager accepts')
  for (const part of ['kernel', 'initrd', 'disk'] as const) t.equal(await blobs.size(manifest[part]!.sha256), manifest[part]!.size, `the ${part} is in the blob store`)
  const stored = blobs.path(manifest.disk.sha256)
  t.match(spawnSync('debugfs', ['-R', 'stat /etc/systemd/system/multi-user.target.wants/form-ready.service', stored], { encoding: 'utf8' }).stdout, /Fast link dest/, 'the readiness unit is enabled in the disk')
  t.notMatch(spawnSync('debugfs', ['-R', `stat /${BUILD_INIT}`, stored], { encoding: 'utf8' }).stdout, /Type/, 'the build entry is not in the image')
  const allocated = (await stat(stored)).blocks * 512
  t.ok(manifest.disk.size < 2 * 2 ** 30, `the image's disk is sized from its content, not DISK 5 GB: ${Math.round(manifest.disk.size / 2 ** 20)} MiB, ${Math.round(allocated / 2 ** 20)} MiB allocated`)

  // Boot it the way the node does: a sparse copy of the disk truncated to diskGb (the stored disk
  // stays as built), direct kernel boot, virtio disk, serial console; wait for the guest agent's line.
  const booted = await bootImage({ blobs, manifest, dir, name: 'base-test', forward: [] }, (fn) => t.teardown(fn)).catch((error: Error) => error)
  t.ok(!(booted instanceof Error), `the guest booted systemd and printed FORM-READY${booted instanceof Error ? `: ${booted.message}` : ''}`)
  if (booted instanceof Error) return
  t.match(booted.console(), new RegExp(`form-guest: grew the root filesystem on /dev/vda from ${Math.floor(manifest.disk.size / 2 ** 20)} MiB to 2048 MiB`), 'the guest agent grew the root filesystem to the whole disk')
  await booted.stop()
  const disk = booted.disk
  // the guest was killed, not shut down: e2fsck replays its journal before the superblock is read
  t.ok((spawnSync('e2fsck', ['-fy', disk]).status ?? 8) <= 1, 'e2fsck finds the grown filesystem sound')
  const after = spawnSync('dumpe2fs', ['-h', disk], { encoding: 'utf8' }).stdout
  t.equal(Number(after.match(/^Block count:\s+(\d+)/m)?.[1]) * 4096, 2 * 2 ** 30, 'the filesystem on the instance disk is 2 GiB')
})
