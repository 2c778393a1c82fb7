import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { buildImage } from '../../plugins/pack/lib/builder/build.js'
import { parseFormfile, type Formfile } from '../../plugins/pack/lib/formfile/index.js'
import { builderSkip, packDirectory } from '../helpers/builder.js'
import { CACHE } from '../helpers/guest-image.js'

/**
 * Formfiles that try to reach the builder's host. Every step runs in a throwaway VM: what a step
 * does lands on the VM's own disk, and the build VM's network reaches neither the node nor a
 * private range. The attacks are batched into two builds (each cold build costs minutes under TCG).
 */

const skip = builderSkip()
const cacheDir = join(CACHE, 'builder')
const debugfs = (disk: string, request: string) => spawnSync('debugfs', ['-R', request, disk], { encoding: 'utf8' }).stdout
const sha = (file: string) => (existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'absent')

/** Host state an escaped step would change. */
function hostState(): Record<string, string> {
  const files = ['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/hostname', '/etc/resolv.conf', '/etc/hosts']
  const out: Record<string, string> = Object.fromEntries(files.map((f) => [f, sha(f)]))
  out.hostname = readFileSync('/proc/sys/kernel/hostname', 'utf8')
  out.domainname = readFileSync('/proc/sys/kernel/domainname', 'utf8')
  out.loMtu = readFileSync('/sys/class/net/lo/mtu', 'utf8')
  out.mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter((l) => !l.includes('/tmp/tap-testdir') && !l.includes(' /run/netns'))
    .sort()
    .join('\n')
  return out
}

/** A build on the machine's cached base, in a test directory of its own. */
async function build(dir: string, formfile: Formfile, buildId: string, onOutput?: (c: string) => void) {
  return buildImage({
    formfile,
    owner: '0x' + 'e'.repeat(40),
    buildId: buildId.repeat(64),
    context: await packDirectory(join(dir, 'ctx'), join(dir, 'ctx.tar.gz')),
    workDir: join(dir, 'w'),
    cacheDir,
    blobs: new BlobStore(join(dir, 'blobs')),
    suite: 'bookworm',
    onOutput,
  })
}

/** The host's own IPv4 addresses: where the node's API and P2P ports listen. */
const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address

t.test('a build that tries every way out of the chroot era finishes confined in its VM, and its network reaches neither the node nor a private range', { skip }, async (t) => {
  const dir = t.testdir({ ctx: { 'motd.txt': 'hello\n' } })
  const nonce = randomBytes(4).toString('hex')
  const marker = `/tmp/form-escape-${nonce}`
  // where a COPY through a planted symlink would land on the host (not /tmp: the build VM's /tmp is a tmpfs)
  const copyTarget = `/opt/form-escape-${nonce}-copy`
  // a stand-in for the node's API port, listening on every host address
  let connections = 0
  const server = createServer((s) => {
    connections++
    s.destroy()
  })
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r))
  t.teardown(() => server.close())
  const port = (server.address() as AddressInfo).port
  const probes = [`${hostIp}/${port}`, `10.0.2.2/${port}`, '10.255.255.53/80', '192.168.1.1/80', '172.16.0.1/80', '169.254.169.254/80', '100.64.0.1/80']
  const formfile = parseFormfile(`NAME escape
USER username:ada lock_passwd:true
RUN echo ran > /attacks.txt
# the classic chroot escape, then a write where the host's /tmp would be
RUN perl -e 'mkdir "/ex"; chroot "/ex" or die "chroot: $!"; chdir ".." for 1..64; chroot "." or die "chroot .: $!"; mkdir "${marker}"; open my $f, ">", "${marker}/chroot" or die "$!"; print $f "escaped\\n"; close $f' && echo chroot-escape >> /attacks.txt
RUN echo pwned-${nonce} > /proc/sys/kernel/hostname && echo pwned > /proc/sys/kernel/domainname && echo proc-sys >> /attacks.txt
RUN echo 1280 > /sys/class/net/lo/mtu && echo sys >> /attacks.txt
RUN mknod /hostdisk b $((0x$(stat -c %t /dev/vda))) $((0x$(stat -c %T /dev/vda))) && dd if=/hostdisk of=/dev/null bs=4096 count=1 && echo mknod >> /attacks.txt
RUN mkdir -p /mnt/host && mount /hostdisk /mnt/host && mkdir -p /mnt/host${marker} && touch /mnt/host${marker}/mount && echo mount >> /attacks.txt && umount /mnt/host
RUN mkdir -p /etc/form && rm -rf /etc/form/env && ln -s ${marker}-env /etc/form/env && echo env-symlink >> /attacks.txt
ENV PLANTED=1
RUN mkdir -p /srv ${copyTarget} && ln -s ${copyTarget} /srv/out && echo copy-symlink >> /attacks.txt
COPY motd.txt /srv/out/motd.txt
INSTALL hello
RUN for p in ${probes.join(' ')}; do if timeout 8 bash -c "exec 3<>/dev/tcp/\${p%/*}/\${p#*/}" 2>/dev/null; then echo "open $p"; else echo "blocked $p"; fi; done > /net.txt; if timeout 20 bash -c 'exec 3<>/dev/tcp/deb.debian.org/80'; then echo "open mirror" >> /net.txt; fi
`).formfile!
  t.ok(formfile, 'the Formfile is valid')
  t.ok(hostIp, `the host has an address for the node's ports (${hostIp})`)
  const before = hostState()
  let output = ''
  const result = await build(dir, formfile, 'e', (c) => (output += c))
  const disk = new BlobStore(join(dir, 'blobs')).path(result.manifest.disk.sha256)
  t.same(debugfs(disk, 'cat /attacks.txt').trim().split('\n'), ['ran', 'chroot-escape', 'proc-sys', 'sys', 'mknod', 'mount', 'env-symlink', 'copy-symlink'], `every attack ran, inside the build VM (output tail: ${output.slice(-300)})`)
  t.match(debugfs(disk, `cat ${copyTarget}/motd.txt`), /hello/, 'COPY through a symlink landed inside the image')

  // the host is as it was
  for (const path of [marker, `${marker}-env`, copyTarget]) t.notOk(existsSync(path), `${path} is not on the host`)
  t.same(hostState(), before, 'the watched host files, hostname, domain name, loopback MTU and mounts are unchanged')

  // the network: the package mirror yes (INSTALL ran apt-get update), the node and private ranges no
  t.match(debugfs(disk, 'stat /usr/bin/hello'), /Type: regular/, 'INSTALL reached the package mirror through the host')
  const net = debugfs(disk, 'cat /net.txt')
  for (const p of probes) t.match(net, new RegExp(`^blocked ${p.replace(/\./g, '\\.')}$`, 'm'), `the build VM cannot open ${p}`)
  t.match(net, /^open mirror$/m, 'while deb.debian.org:80 answers (the control: the probe can succeed)')
  t.equal(connections, 0, "the stand-in for the node's API port saw no connection")
})

t.test('a USER whose home the image points outside with ../.. fails the build with a clear error, and the host is unchanged', { skip }, async (t) => {
  const dir = t.testdir({ ctx: {} })
  const marker = `/tmp/form-escape-home-${randomBytes(4).toString('hex')}`
  const formfile = parseFormfile(`NAME escape-home
USER username:ada lock_passwd:true
RUN useradd -d /home/../../..${marker} -M bob
USER username:bob lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEscapeEscapeEscapeEscapeEscapeEscapeEscape0 x@y"
`).formfile!
  const before = hostState()
  const error = await build(dir, formfile, 'f').then(
    () => undefined,
    (e: { code?: string; message: string; output?: string }) => e,
  )
  t.equal(error?.code, 'BUILD_STEP_FAILED', `the build fails (${error?.message})`)
  t.match(error?.message, /USER bob failed/, 'naming the USER step')
  t.match(error?.output, /useradd: user 'bob' already exists/, 'with what useradd said')
  t.notOk(existsSync(marker), `${marker} is not on the host`)
  t.same(hostState(), before, 'the watched host files are unchanged')
})
