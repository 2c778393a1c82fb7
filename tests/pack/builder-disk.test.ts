import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { writeExt4Image } from '../../plugins/pack/lib/builder/disk.js'
import { GUEST_AGENT_FILES, installGuestAgent } from '../../plugins/pack/lib/builder/guest-agent.js'
import { NetnsLab, netnsUnavailable } from '../helpers/netns.js'

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const noE2fs = ['mke2fs', 'debugfs'].find((tool) => !has(tool))
const debugfs = (image: string, request: string) => spawnSync('debugfs', ['-R', request, image], { encoding: 'utf8' }).stdout

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
  await writeExt4Image(root, image, 1)
  const st = await stat(image)
  t.equal(st.size, 2 ** 30, 'the image is DISK GB long')
  t.ok(st.blocks * 512 < st.size / 8, `and sparse (${Math.round((st.blocks * 512) / 2 ** 20)} MiB allocated)`)
  t.equal(debugfs(image, 'cat /srv/app/index.html'), '<h1>hello</h1>\n', 'files are in the image')
  t.equal(debugfs(image, 'cat /usr/local/sbin/form-guest'), GUEST_AGENT_FILES['usr/local/sbin/form-guest'].content)
  t.match(debugfs(image, 'stat /usr/local/sbin/form-guest'), /Mode:\s+0755/, 'the agent is executable')
  for (const unit of ['form-guest.service', 'form-ready.service']) {
    t.match(debugfs(image, `stat /etc/systemd/system/multi-user.target.wants/${unit}`), new RegExp(`Fast link dest: "/etc/systemd/system/${unit}"`), `${unit} is enabled`)
  }
  t.match(debugfs(image, 'cat /etc/systemd/system/form-ready.service'), /FORM-READY > \/dev\/ttyS0/)
  t.match(debugfs(image, 'stat /srv/app/index.html'), /User:\s+0\s+Group:\s+0/, 'files belong to root')

  const expected = createHash('sha256')
  for await (const chunk of createReadStream(image)) expected.update(chunk as Buffer)
  const blobs = new BlobStore(join(dir, 'blobs'))
  const ref = await blobs.putFile(image)
  t.same(ref, { sha256: expected.digest('hex'), size: 2 ** 30 })
  t.notOk(existsSync(image), 'the file was moved, not copied')
  t.equal((await stat(blobs.path(ref.sha256))).blocks, st.blocks, 'and stays sparse in the store')

  await t.rejects(writeExt4Image(root, join(dir, 'x.img'), 0), { code: 'BUILD_BAD_DISK' })
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
  await writeFile(join(dir, 'cmdline'), 'root=/dev/vda rw console=ttyS0 form.ip=10.42.0.7/24 form.gw=10.42.0.1 form.hostname=web-1 form.dns=10.42.0.1 quiet\n')
  const r = spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--uts', 'sh', join(root, 'usr/local/sbin/form-guest')], {
    encoding: 'utf8',
    env: { ...process.env, FORM_GUEST_CMDLINE: join(dir, 'cmdline'), FORM_GUEST_ROOT: root },
  })
  t.equal(r.status, 0, r.stderr)
  t.match(lab.run(['ip', '-n', ns, '-4', 'addr', 'show', 'dev', 'eth0']), /inet 10\.42\.0\.7\/24/, 'the address is on the first interface')
  t.match(lab.run(['ip', '-n', ns, 'route', 'show', 'default']), /default via 10\.42\.0\.1 dev eth0/, 'with the default route')
  t.equal(await readFile(join(root, 'etc/hostname'), 'utf8'), 'web-1\n')
  t.equal(await readFile(join(root, 'etc/resolv.conf'), 'utf8'), 'nameserver 10.42.0.1\n')
  if (has('ssh-keygen')) t.ok(existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key')), 'fresh SSH host keys were made')
})
