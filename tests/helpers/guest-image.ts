import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { IMAGE_SCHEMA, type ImageManifest } from '../../plugins/node/lib/vmm/image.js'

/**
 * A bootable image for the hypervisor tests, made the way the image contract says (kernel, initrd,
 * raw ext4 disk and a form.image/1 manifest in the node's blob store), from real parts: Debian's
 * kernel (apt-get download + dpkg -x, cached) and a busybox initramfs whose /init keeps the guest
 * side of the contract (configure eth0 from form.ip/form.gw, print FORM-READY on ttyS0, power off
 * on the ACPI button). When the image builder lands, `putGuestImage` is the one function to swap
 * for a real `form pack build`.
 */

export const CACHE = process.env.FORM_TEST_CACHE ?? join(homedir(), '.cache', 'form-tests')

/** Modules the initramfs loads, in dependency order (busybox insmod resolves nothing). Missing ones are built in. */
const MODULES = [
  'virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_mmio',
  'failover', 'net_failover', 'virtio_net', 'virtio_blk', 'virtio-rng',
  'crc16', 'crc32c_generic', 'mbcache', 'jbd2', 'ext4',
  'button', 'evdev',
]

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in ${MODULES.join(' ')}; do [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null; done
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1"=*) echo "\${w#*=}";; esac; done; }
IP=$(arg form.ip); GW=$(arg form.gw); HN=$(arg form.hostname); DNS=$(arg form.dns)
[ -n "$HN" ] && hostname "$HN"
[ -n "$DNS" ] && echo "nameserver $DNS" > /etc/resolv.conf
ip link set lo up
if [ -n "$IP" ]; then
  ip link set eth0 up
  ip addr add "$IP" dev eth0
  [ -n "$GW" ] && ip route add default via "$GW"
fi
# the disk persists across stop and start: count the boots on it
if mount -t ext4 /dev/vda /mnt 2>/dev/null; then
  n=$(( $(cat /mnt/boots 2>/dev/null || echo 0) + 1 )); echo $n > /mnt/boots; sync
  echo "form-test-guest: $(cat /mnt/hello) boots=$n"
fi
# busybox acpid exits at once when it cannot open its log file
mkdir -p /var/log
acpid -f -c /etc/acpi &
echo "form-test-guest: hostname=$(hostname) ip=$IP gw=$GW"
# services: what a test's image runs before it reports ready
echo FORM-READY
while :; do sleep 3600; done
`

const POWER_BUTTON = `#!/bin/sh
echo "form-test-guest: power button, powering off"
umount /mnt 2>/dev/null; sync
poweroff -f
`

/** Why the guest image cannot be made or booted here, or undefined when it can. */
export function guestImageUnavailable(): string | undefined {
  for (const tool of ['qemu-system-x86_64', 'mke2fs']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`
  if (!existsSync('/bin/busybox')) return 'busybox-static is not installed'
  const ldd = spawnSync('ldd', ['/bin/busybox'], { encoding: 'utf8' })
  if (ldd.status === 0 && !/not a dynamic executable|statically linked/.test(ldd.stdout + ldd.stderr)) return '/bin/busybox is dynamically linked (install busybox-static)'
  if (!cachedKernel() && spawnSync('sh', ['-c', 'command -v apt-get && command -v dpkg']).status !== 0) return 'no cached kernel and no apt-get/dpkg to fetch one'
  return undefined
}

export interface GuestKernel {
  vmlinuz: string
  modules: string
}

function cachedKernel(): GuestKernel | undefined {
  const root = join(CACHE, 'kernel')
  const entries = existsSync(root) ? readdirSync(root).filter((d) => d.startsWith('linux-image-')).sort() : []
  for (const pkg of entries.reverse()) {
    const boot = join(root, pkg, 'boot')
    const vmlinuz = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined
    if (!vmlinuz) continue
    const release = vmlinuz.slice('vmlinuz-'.length)
    return { vmlinuz: join(boot, vmlinuz), modules: join(root, pkg, 'lib', 'modules', release, 'kernel') }
  }
  return undefined
}

/** Debian's current amd64 kernel, downloaded and unpacked once into the test cache. */
export async function guestKernel(): Promise<GuestKernel> {
  const cached = cachedKernel()
  if (cached) return cached
  const depends = () => spawnSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' }).stdout
  let pkg = /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(depends())?.[1]
  if (!pkg) {
    execFileSync('apt-get', ['update', '-qq'])
    pkg = /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(depends())?.[1]
  }
  if (!pkg) throw new Error('apt-cache does not know linux-image-amd64')
  await mkdir(join(CACHE, 'kernel'), { recursive: true })
  // unpacked beside the cache and renamed into place: test files running at once never see half a kernel
  const work = await mkdtemp(join(CACHE, 'kernel', '.tmp-'))
  try {
    execFileSync('apt-get', ['download', pkg], { cwd: work, stdio: 'ignore' })
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'))!
    execFileSync('dpkg', ['-x', join(work, deb), join(work, 'x')])
    await rename(join(work, 'x'), join(CACHE, 'kernel', pkg)).catch(() => {})
  } finally {
    await rm(work, { recursive: true, force: true })
  }
  return cachedKernel()!
}

/** A newc cpio archive (what the kernel unpacks as initramfs), written without the cpio tool. */
function cpio(entries: { name: string; mode: number; data?: Buffer; rdev?: [number, number] }[]): Buffer {
  const parts: Buffer[] = []
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4)
  let ino = 1
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }] as typeof entries) {
    const data = e.data ?? Buffer.alloc(0)
    const name = Buffer.from(e.name + '\0')
    const fields = [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0]
    const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''))
    parts.push(header, name, pad(header.length + name.length), data, pad(data.length))
  }
  return Buffer.concat(parts)
}

export async function guestInitrd(kernel: GuestKernel, init = INIT): Promise<Buffer> {
  const dir = (name: string) => ({ name, mode: 0o040755 })
  const file = (name: string, data: Buffer, mode = 0o100755) => ({ name, mode, data })
  const entries = [
    ...['bin', 'sbin', 'dev', 'proc', 'sys', 'mnt', 'tmp', 'root', 'etc', 'etc/acpi', 'etc/acpi/PWRF', 'lib', 'lib/modules'].map(dir),
    // the kernel opens /dev/console for /init's stdio before anything is mounted
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] as [number, number] },
    file('init', Buffer.from(init)),
    file('bin/busybox', await readFile('/bin/busybox')),
    file('etc/acpi/PWRF/00000080', Buffer.from(POWER_BUTTON)),
  ]
  for (const m of MODULES) {
    const found = spawnSync('find', [kernel.modules, '-name', `${m}.ko`], { encoding: 'utf8' }).stdout.split('\n')[0]
    if (found) entries.push(file(`lib/modules/${m}.ko`, await readFile(found), 0o100644))
  }
  return gzipSync(cpio(entries), { level: 1 })
}

/** A small raw ext4 disk (no loop mount: mke2fs -d). */
export async function guestDisk(): Promise<Buffer> {
  const work = await mkdtemp(join(tmpdir(), 'form-guest-disk-'))
  try {
    await mkdir(join(work, 'root'))
    await writeFile(join(work, 'root', 'hello'), 'hello from the instance disk\n')
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'formtest', '-d', join(work, 'root'), join(work, 'disk.img'), '16M'])
    return await readFile(join(work, 'disk.img'))
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

export interface GuestImage {
  /** the image id: SHA-256 of the manifest */
  image: string
  manifest: ImageManifest
}

/**
 * Puts the test image into a node's blob store (`<dataDir>/blobs`) and returns its id. `init`
 * replaces the guest's /init (e.g. one that fails, to see how the node reports it); `services` are
 * shell lines the standard /init runs before it reports ready.
 */
export async function putGuestImage(dataDir: string, meta: { owner: string; buildId: string; name?: string; init?: string; services?: string; expose?: ImageManifest['expose']; health?: ImageManifest['health'] }): Promise<GuestImage> {
  const kernel = await guestKernel()
  const blobs = new BlobStore(join(dataDir, 'blobs'))
  const put = async (data: Buffer) => ({ sha256: await blobs.put(data), size: data.length })
  const manifest: ImageManifest = {
    schema: IMAGE_SCHEMA,
    buildId: meta.buildId,
    name: meta.name ?? 'form-test-guest',
    owner: meta.owner,
    createdAt: new Date().toISOString(),
    kernel: await put(await readFile(kernel.vmlinuz)),
    initrd: await put(await guestInitrd(kernel, meta.init ?? (meta.services ? INIT.replace('# services: what a test', `${meta.services}\n# services: what a test`) : undefined))),
    disk: { ...(await put(await guestDisk())), format: 'raw', fs: 'ext4' },
    cmdline: 'root=/dev/vda rw console=ttyS0',
    resources: { vcpus: 1, memoryMb: 256, diskGb: 1 },
    expose: meta.expose ?? [],
    ...(meta.health ? { health: meta.health } : {}),
    users: [],
    entrypoint: [],
    formfile: '',
  }
  const image = await blobs.put(Buffer.from(JSON.stringify(manifest)))
  return { image, manifest }
}

/** Size of a file, or undefined when it does not exist. */
export async function sizeOf(file: string): Promise<number | undefined> {
  return stat(file).then((s) => s.size, () => undefined)
}
