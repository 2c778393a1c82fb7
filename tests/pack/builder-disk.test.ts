import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { copyFile, link, mkdir, open, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { journalMiB, layoutDisk, measureTree, writeExt4Image } from '../../plugins/pack/lib/builder/disk.js'
import { GUEST_AGENT_FILES, installGuestAgent } from '../../plugins/pack/lib/builder/guest-agent.js'
import { NetnsLab, netnsUnavailable } from '../helpers/netns.js'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const noE2fs = ['mke2fs', 'debugfs'].find((tool) => !has(tool))
const debugfs = (image: string, request: string) => spawnSync('debugfs', ['-R', request, image], { encoding: 'utf8' }).stdout
const MiB = 2 ** 20
const GiB = 2 ** 30
/** The superblock's numbers, as dumpe2fs prints them. */
function superblock(image: string): { bytes: number; inodes: number; groupBytes: number; groupInodes: number; freeInodes: number; freeBytes: number; features: string } {
  const out = spawnSync('dumpe2fs', ['-h', image], { encoding: 'utf8' }).stdout
  const n = (key: string) => Number(out.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1])
  const block = n('Block size')
  return { bytes: n('Block count') * block, inodes: n('Inode count'), groupBytes: n('Blocks per group') * block, groupInodes: n('Inodes per group'), freeInodes: n('Free inodes'), freeBytes: n('Free blocks') * block, features: out.match(/^Filesystem features:\s+(.*)$/m)?.[1] ?? '' }
}
const fsck = (image: string) => spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })

t.test('a root filesystem with the guest agent becomes a sparse ext4 image, moved into the blob store by hash', { skip: noE2fs ? `cannot run here: ${noE2fs} is not installed` : false }, async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'root')
  await mkdir(join(root, 'etc/ssh'), { recursive: true })
  await mkdir(join(root, 'srv/app'), { recursive: true })
  await writeFile(join(root, 'srv/app/index.html'), '<h1>hello</h1>\n')
  await writeFile(join(root, 'etc/ssh/ssh_host_ed25519_key'), 'build-time key')
  await installGuestAgent(root)
  t.notOk(existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key')), 'build-time SSH host keys are removed')

  const image = join(dir, 'disk.img')
  const layout = await writeExt4Image(root, image, 5)
  const st = await stat(image)
  // sized from the content, not DISK: a Formfile's DISK 5 used to make a 5 GiB file
  t.equal(st.size, layout.size, 'the image is as long as its layout')
  t.equal(st.size % MiB, 0, 'a whole number of MiB')
  t.ok(st.size < GiB / 4, `much smaller than DISK 5 GB (${st.size / MiB} MiB)`)
  t.notOk(layout.fallback, 'the estimate was enough for mke2fs')
  t.ok(st.blocks * 512 < st.size / 8, `and sparse (${Math.round((st.blocks * 512) / MiB)} MiB allocated)`)
  const sb = superblock(image)
  t.equal(sb.bytes, st.size, 'the filesystem fills the image')
  t.match(sb.features, /extent/, 'ext4')
  t.equal(sb.groupInodes, sb.groupBytes / 16384, `one inode per 16 KiB of a block group (${sb.groupInodes}), so the grown filesystem has the density of a native one`)
  t.ok(sb.freeBytes >= 32 * MiB, `room left for the guest's first writes (${Math.round(sb.freeBytes / MiB)} MiB)`)
  t.equal(fsck(image).status, 0, 'e2fsck finds nothing to mend')
  t.equal(debugfs(image, 'cat /srv/app/index.html'), '<h1>hello</h1>\n', 'files are in the image')
  t.equal(debugfs(image, 'cat /usr/local/sbin/form-guest'), GUEST_AGENT_FILES['usr/local/sbin/form-guest'].content)
  t.match(debugfs(image, 'stat /usr/local/sbin/form-guest'), /Mode:\s+0755/, 'the agent is executable')
  for (const unit of ['form-guest.service', 'form-ready.service']) {
    t.match(debugfs(image, `stat /etc/systemd/system/multi-user.target.wants/${unit}`), new RegExp(`Fast link dest: "/etc/systemd/system/${unit}"`), `${unit} is enabled`)
  }
  t.match(debugfs(image, 'cat /etc/systemd/system/form-ready.service'), /FORM-READY\\r\\n" > \/dev\/ttyS0/)
  t.match(debugfs(image, 'stat /srv/app/index.html'), /User:\s+0\s+Group:\s+0/, 'files belong to root')

  const expected = createHash('sha256')
  for await (const chunk of createReadStream(image)) expected.update(chunk as Buffer)
  const blobs = new BlobStore(join(dir, 'blobs'))
  const ref = await blobs.putFile(image)
  t.same(ref, { sha256: expected.digest('hex'), size: st.size })
  t.notOk(existsSync(image), 'the file was moved, not copied')
  t.equal((await stat(blobs.path(ref.sha256))).blocks, st.blocks, 'and stays sparse in the store')

  await t.rejects(writeExt4Image(root, join(dir, 'x.img'), 0), { code: 'BUILD_BAD_DISK' })
})

t.test('the image size: blocks with slack, inodes, journal and margin, never past DISK', async (t) => {
  const small = layoutDisk({ bytes: 100 * MiB, inodes: 1000 }, 5)
  t.equal(small.size % MiB, 0)
  t.ok(small.size >= 110 * MiB + journalMiB(5) * MiB + 64 * MiB && small.size < 300 * MiB, `100 MiB of files: ${small.size / MiB} MiB`)
  t.ok(small.inodes >= 1111 && small.inodes >= small.size / 16384, `inodes for the files and one per 16 KiB: ${small.inodes}`)
  const many = layoutDisk({ bytes: 100 * MiB, inodes: 200_000 }, 5)
  t.ok(many.inodes >= 220_000, 'many small files: 10% more inodes than files')
  t.ok(many.size >= small.size + (many.inodes - small.inodes) * 256 - MiB, 'and their inode tables are counted')
  t.equal(journalMiB(1), 32)
  t.equal(journalMiB(5), 64, 'the journal is what mke2fs gives a disk of DISK GB, at most 64 MiB')
  const tight = layoutDisk({ bytes: GiB - 150 * MiB, inodes: 1000 }, 1)
  t.equal(tight.size, GiB, 'content that fits in DISK but not with the margins gets the whole of DISK')
  t.throws(() => layoutDisk({ bytes: GiB, inodes: 10 }, 1), { code: 'BUILD_DISK_TOO_SMALL', message: /does not fit in DISK 1 GB/, hint: /raise DISK/ })
})

t.test('a tree that does not fit in DISK is refused with a hint', { skip: noE2fs ? `cannot run here: ${noE2fs} is not installed` : false }, async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'root')
  await mkdir(root, { recursive: true })
  const fh = await open(join(root, 'big'), 'w')
  await fh.write('data at the start')
  await fh.truncate(GiB + 1) // the estimate goes by a file's length (mke2fs leaves out runs of zeros: it errs on the large side)
  await fh.close()
  await t.rejects(writeExt4Image(root, join(dir, 'disk.img'), 1), { code: 'BUILD_DISK_TOO_SMALL', message: /does not fit in DISK 1 GB/, hint: /raise DISK/ })
})

t.test('trees of many small files, wide directories, long symlinks and hard links fit in their estimate', { skip: noE2fs ? `cannot run here: ${noE2fs} is not installed` : false }, async (t) => {
  const dir = t.testdir()
  const root = join(dir, 'root')
  const wide = join(root, 'var/lib/wide')
  await mkdir(wide, { recursive: true })
  for (let i = 0; i < 6000; i++) await writeFile(join(wide, `a-long-file-name-that-fills-directory-blocks-${i}.conf`), `${i}\n`)
  for (let d = 0; d < 40; d++) {
    await mkdir(join(root, 'usr/share', `d${d}`), { recursive: true })
    for (let i = 0; i < 50; i++) await writeFile(join(root, 'usr/share', `d${d}`, `f${i}`), Buffer.alloc(5000 + i * 97, d + 1))
  }
  for (let i = 0; i < 1500; i++) await symlink(`/usr/share/${'x'.repeat(80)}/${i}`, join(root, `usr/share/link-${i}`))
  for (let i = 0; i < 500; i++) await link(join(wide, `a-long-file-name-that-fills-directory-blocks-${i}.conf`), join(root, `usr/share/hard-${i}`))
  const usage = await measureTree(root)
  t.equal(usage.inodes, 1 + 5 + 40 + 6000 + 40 * 50 + 1500, 'hard links are counted once')
  const image = join(dir, 'disk.img')
  const layout = await writeExt4Image(root, image, 5)
  t.notOk(layout.fallback, `mke2fs needed no more than the estimate (${layout.size / MiB} MiB)`)
  t.equal(fsck(image).status, 0, 'e2fsck finds nothing to mend')
  const sb = superblock(image)
  t.ok(sb.freeInodes >= usage.inodes / 10, `inodes to spare: ${sb.freeInodes}`)
  t.equal(debugfs(image, 'cat /usr/share/hard-7'), '7\n')
  t.match(debugfs(image, 'stat /usr/share/link-3'), /Type: symlink/)
})

const netMissing = netnsUnavailable(['unshare'])
t.test('the guest agent configures the network, hostname and DNS from the kernel command line', { skip: netMissing ? `cannot run here: ${netMissing}` : false }, async (t) => {
  const dir = t.testdir()
  const lab = new NetnsLab(t)
  const ns = lab.namespace('fga')
  lab.run(['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']) // no dummy module on this kernel
  const root = join(dir, 'root')
  await installGuestAgent(root)
  await mkdir(join(root, 'etc/ssh'), { recursive: true })
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost\n127.0.1.1 builder-host\n::1 localhost ip6-localhost\n')
  await writeFile(join(dir, 'cmdline'), 'root=/dev/vda rw console=ttyS0 form.ip=10.42.0.7/24 form.gw=10.42.0.1 form.hostname=web-1 form.dns=10.42.0.1 quiet\n')
  const r = spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--uts', 'sh', join(root, 'usr/local/sbin/form-guest')], {
    encoding: 'utf8',
    env: { ...process.env, FORM_GUEST_CMDLINE: join(dir, 'cmdline'), FORM_GUEST_ROOT: root },
  })
  t.equal(r.status, 0, r.stderr)
  t.match(lab.run(['ip', '-n', ns, '-4', 'addr', 'show', 'dev', 'eth0']), /inet 10\.42\.0\.7\/24/, 'the address is on the first interface')
  t.match(lab.run(['ip', '-n', ns, 'route', 'show', 'default']), /default via 10\.42\.0\.1 dev eth0/, 'with the default route')
  t.equal(await readFile(join(root, 'etc/hostname'), 'utf8'), 'web-1\n')
  t.equal(await readFile(join(root, 'etc/hosts'), 'utf8'), '127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.1.1 web-1\n', 'the name resolves locally (sudo needs it)')
  t.equal(await readFile(join(root, 'etc/resolv.conf'), 'utf8'), 'nameserver 10.42.0.1\n')
  if (has('ssh-keygen')) t.ok(existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key')), 'fresh SSH host keys were made')
})

t.test('the guest agent grows an ext4 filesystem to the whole of its disk, and leaves anything else alone', { skip: netMissing || noE2fs ? `cannot run here: ${netMissing ?? `${noE2fs} is not installed`}` : false }, async (t) => {
  const dir = t.testdir()
  const lab = new NetnsLab(t)
  const ns = lab.namespace('fgr')
  const root = join(dir, 'root')
  await mkdir(join(root, 'srv'), { recursive: true })
  await writeFile(join(root, 'srv/data'), 'kept across the resize\n')
  await installGuestAgent(root)
  const built = join(dir, 'image.img')
  const layout = await writeExt4Image(root, built, 1)
  // what the node does with an instance's disk: a sparse copy, truncated to diskGb
  const disk = join(dir, 'disk.raw')
  await copyFile(built, disk)
  await (await open(disk, 'r+')).truncate(GiB).then(() => undefined)
  await writeFile(join(dir, 'cmdline'), 'root=/dev/vda rw console=ttyS0\n')
  const agent = (device?: string) =>
    spawnSync('ip', ['netns', 'exec', ns, 'sh', join(root, 'usr/local/sbin/form-guest')], {
      encoding: 'utf8',
      env: { ...process.env, FORM_GUEST_CMDLINE: join(dir, 'cmdline'), FORM_GUEST_ROOT: root, ...(device ? { FORM_GUEST_ROOTDEV: device } : {}) },
    })

  t.equal(superblock(disk).bytes, layout.size, 'the copy starts with the image\'s filesystem')
  const grown = agent(disk)
  t.equal(grown.status, 0, grown.stderr)
  t.match(grown.stdout, new RegExp(`form-guest: grew the root filesystem on ${disk} from ${layout.size / MiB} MiB to 1024 MiB`), 'it says what it did')
  t.equal(superblock(disk).bytes, GiB, 'the filesystem fills the disk')
  t.equal(superblock(disk).inodes, GiB / 16384, 'with one inode per 16 KiB, as mke2fs would give the whole disk')
  t.equal(fsck(disk).status, 0, 'e2fsck finds nothing to mend')
  t.equal(debugfs(disk, 'cat /srv/data'), 'kept across the resize\n', 'the files are intact')

  const again = agent(disk)
  t.equal(again.status, 0)
  t.match(again.stdout, /form-guest: the root filesystem fills .* \(1024 MiB\)/, 'a second boot has nothing to do')

  const other = join(dir, 'other.raw')
  await writeFile(other, Buffer.alloc(4 * MiB, 7))
  const refused = agent(other)
  t.equal(refused.status, 0, 'not ext4: the boot goes on')
  t.match(refused.stdout, /no ext4 filesystem on .*: not grown/)
  t.ok((await readFile(other)).equals(Buffer.alloc(4 * MiB, 7)), 'and the device is untouched')

  // outside a guest (FORM_GUEST_ROOT set), the running system's own root is never a candidate
  const none = agent()
  t.equal(none.status, 0)
  t.notMatch(none.stdout, /form-guest: .*(grew|fills|not grown|failed)/, 'no device named: nothing grown, nothing probed')
})
