import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GUEST_AGENT_FILES } from '../../plugins/pack/lib/builder/guest-agent.js'
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

/** The guest agent's files in a test root, as the build VM's finalize script writes them into an image. */
async function installGuestAgent(root: string): Promise<void> {
  for (const [rel, f] of Object.entries(GUEST_AGENT_FILES)) {
    await mkdir(join(root, rel, '..'), { recursive: true })
    await writeFile(join(root, rel), f.content, { mode: f.mode })
  }
}

/** A small ext4 image of a test tree (what a build VM hands back: the image's filesystem, shrunk to its content). */
function writeExt4Image(root: string, image: string): { size: number } {
  // one whole block group, so growing keeps one inode per 16 KiB (as the build VM's base disk does)
  const size = 128 * MiB
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-T', 'default', '-b', '4096', '-I', '256', '-d', root, image, '128M'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return { size }
}

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
  const layout = writeExt4Image(root, built)
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
