import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chooseBackend, kvmStatus } from '../../plugins/node/lib/hypervisor/detect.js'
import { bootableKernel, bzImagePayload, hasPvhEntry } from '../../plugins/node/lib/hypervisor/kernel.js'
import { qemuArgs } from '../../plugins/node/lib/hypervisor/qemu.js'
import { chVmConfig } from '../../plugins/node/lib/hypervisor/cloud-hypervisor.js'
import { parseManifest } from '../../plugins/node/lib/vmm/image.js'
import { guestCmdline, hostnameFor, macFor, refusal, shortName, stopReport } from '../../plugins/node/lib/vmm/guest.js'
import { parseDesired, parseInstanceKey } from '../../plugins/instances/index.js'
import { selectInstances, type InstanceView } from '../../plugins/instances/lib/views.js'
import { timestampAfter } from '../../plugins/state/lib/owner-ops.js'
import { guestKernel, guestImageUnavailable } from '../helpers/guest-image.js'

const spec = {
  name: 'abc123',
  kernel: '/k',
  initrd: '/i',
  cmdline: 'console=ttyS0 form.ip=10.0.0.2/24',
  disk: '/d',
  vcpus: 1,
  memoryMb: 256,
  tap: 'fvabc123',
  mac: '02:00:00:00:00:01',
  consoleLog: '/c.log',
  runDir: '/run/x',
  processLog: '/p.log',
}

t.test('guest command line: the image line, then the network keys, panic=-1, and the TSC fix under TCG only', async (t) => {
  const base = 'root=/dev/vda rw console=ttyS0 form.ip=1.2.3.4/8 panic=5'
  t.equal(
    guestCmdline(base, { ip: '10.1.2.5', prefix: 24, gateway: '10.1.2.1', hostname: 'web-1', dns: '10.1.2.1', accel: 'tcg' }),
    'root=/dev/vda rw console=ttyS0 form.ip=10.1.2.5/24 form.gw=10.1.2.1 form.hostname=web-1 form.dns=10.1.2.1 panic=-1 tsc_early_khz=2000000',
    'keys the image set itself are replaced, never doubled',
  )
  t.notMatch(guestCmdline(base, { ip: '10.1.2.5', prefix: 24, gateway: '10.1.2.1', hostname: 'h', dns: '10.1.2.1', accel: 'kvm' }), /tsc_early_khz/)
})

t.test('resource accounting refuses what does not fit and says what is short', async (t) => {
  const cap = { vcpus: 4, memoryMb: 4096, diskGb: 20 }
  t.equal(refusal(cap, [{ vcpus: 2, memoryMb: 2048, diskGb: 10 }], { vcpus: 2, memoryMb: 2048, diskGb: 10 }), undefined, 'exactly full fits')
  t.equal(
    refusal(cap, [{ vcpus: 3, memoryMb: 1024, diskGb: 19 }], { vcpus: 2, memoryMb: 512, diskGb: 2 }),
    "does not fit on this node: 2 vCPU requested, 1 of 4 free; 2 GiB disk requested, 1 of 20 free (the node offers what its operator config's [node.resources] sets, else the host minus [node.reserve]: its operator may raise that, or delete instances that hold room)",
  )
  t.match(refusal(cap, [], { vcpus: 1, memoryMb: 8192, diskGb: 1 }), /8192 MiB memory requested, 4096 of 4096 free/)
})

t.test("a stop is reported as the guest's own poweroff, or as forced with the reason and the setting to change", async (t) => {
  t.same(stopReport('powered-off', 8200, 15_000), { how: 'powered-off', ms: 8200 })
  const quit = stopReport('quit', 15_100, 15_000)!
  t.equal(quit.how, 'forced')
  t.match(quit.reason, /did not power off within 15 s .*\[node\] shutdown_timeout_s.*QEMU was told to quit/)
  t.match(stopReport('killed', 18_000, 30_000), { how: 'forced', reason: /within 30 s.*killed/ })
  t.equal(stopReport('not-running', 0, 15_000), undefined, 'nothing was running: nothing to report')
})

t.test('desired records are checked as untrusted input', async (t) => {
  const good = { buildId: 'b1', image: 'a'.repeat(64), node: '0x' + '1'.repeat(40), state: 'running', name: 'web', vcpus: 1, memoryMb: 256, diskGb: 1 }
  t.same(parseDesired(good), { desired: good })
  t.same(parseDesired({ ...good, vcpus: undefined, name: undefined }), { desired: { ...good, vcpus: 0, name: '' } }, 'optional fields default')
  t.match(parseDesired({ ...good, image: 'nope' }), { problem: /image must be the SHA-256/ })
  t.match(parseDesired({ ...good, state: 'paused' }), { problem: /state must be one of running, stopped, deleted/ })
  t.match(parseDesired({ ...good, memoryMb: 1.5 }), { problem: /memoryMb must be a whole number/ })
  t.match(parseDesired({ ...good, node: 'me' }), { problem: /node must be a node address/ })
  t.match(parseDesired([1]), { problem: /not an object/ })
  t.same(parseInstanceKey('0xa/web/desired'), { owner: '0xa', id: 'web', kind: 'desired' })
  t.same(parseInstanceKey('0xa/web/observed/0xb'), { owner: '0xa', id: 'web', kind: 'observed', node: '0xb' })
  t.equal(parseInstanceKey('0xa/web/other'), undefined)
})

t.test('names derived from an instance are stable, short and valid', async (t) => {
  t.equal(shortName('0xa', 'web'), shortName('0xa', 'web'))
  t.not(shortName('0xa', 'web'), shortName('0xb', 'web'))
  t.match(shortName('0xa', 'web'), /^[0-9a-f]{12}$/)
  t.ok(`fv${shortName('0xa', 'web')}`.length <= 15, 'the tap name fits IFNAMSIZ')
  t.match(macFor('0xa', 'web'), /^02(:[0-9a-f]{2}){5}$/, 'locally administered unicast')
  t.equal(hostnameFor('My Web_App!', 'x'), 'my-web-app')
  t.equal(hostnameFor('', 'Id.1'), 'i-id-1')
  t.equal(hostnameFor('a'.repeat(80), 'x').length, 63)
})

t.test('image manifests: the contract fields are required and checked', async (t) => {
  const ref = (c: string) => ({ sha256: c.repeat(64), size: 10 })
  const m = { schema: 'form.image/1', buildId: 'b', name: 'n', owner: '0x1', createdAt: 'now', kernel: ref('a'), initrd: ref('b'), disk: { ...ref('c'), format: 'raw', fs: 'ext4' }, cmdline: 'console=ttyS0', resources: { vcpus: 1, memoryMb: 256, diskGb: 1 }, expose: [], users: [], entrypoint: [], formfile: '' }
  t.match(parseManifest(JSON.stringify(m)), { kernel: ref('a'), disk: { format: 'raw', fs: 'ext4' }, resources: { vcpus: 1 } })
  t.throws(() => parseManifest('{'), { code: 'VMM_BAD_IMAGE', message: /not JSON/ })
  t.throws(() => parseManifest(JSON.stringify({ ...m, schema: 'form.image/2' })), { message: /schema is "form.image\/2"/ })
  t.throws(() => parseManifest(JSON.stringify({ ...m, disk: { ...m.disk, format: 'qcow2' } })), { message: /only "raw"/ })
  t.throws(() => parseManifest(JSON.stringify({ ...m, kernel: { sha256: 'x', size: 1 } })), { message: /kernel must be \{sha256, size\}/ })
  t.throws(() => parseManifest(JSON.stringify({ ...m, resources: { vcpus: 0, memoryMb: 1, diskGb: 1 } })), { message: /resources.vcpus/ })
})

t.test('QEMU and Cloud Hypervisor get the same machine', async (t) => {
  const args = qemuArgs(spec, 'tcg')
  const after = (flag: string) => args.filter((_, i) => args[i - 1] === flag)
  t.same(after('-machine'), ['q35,accel=tcg'])
  t.same(after('-cpu'), ['max'])
  t.same(after('-append'), [spec.cmdline])
  t.ok(args.includes('-no-reboot'), 'a panicking guest ends its VM')
  t.same(after('-netdev'), ['tap,id=net0,ifname=fvabc123,script=no,downscript=no'])
  t.same(after('-qmp'), ['unix:/run/x/abc123.qmp,server=on,wait=off'])
  t.ok(after('-chardev')[0].includes('path=/c.log,append=on'), 'the console log is appended across boots')
  t.same(qemuArgs(spec, 'kvm').filter((_, i, a) => a[i - 1] === '-cpu'), ['host'])
  t.match(chVmConfig(spec), { cpus: { boot_vcpus: 1 }, memory: { size: 256 * 2 ** 20 }, payload: { kernel: '/k', initramfs: '/i', cmdline: spec.cmdline }, disks: [{ path: '/d' }], net: [{ tap: 'fvabc123', mac: spec.mac }], serial: { mode: 'File', file: '/c.log' } })
})

t.test('backend selection: auto prefers Cloud Hypervisor with KVM, then QEMU with KVM, then QEMU with TCG', async (t) => {
  const versions = (have: string[]) => async (b: string) => (have.includes(b) ? `${b} 1.0` : undefined)
  const kvm = { usable: true }
  const noKvm = { usable: false, reason: '/dev/kvm does not exist' }
  const base = { qemu: 'qemu', cloudHypervisor: 'chv' }
  t.match(await chooseBackend({ ...base, hypervisor: 'auto', kvm: async () => kvm, version: versions(['qemu', 'chv']) }), { backend: 'cloud-hypervisor', accel: 'kvm' })
  t.match(await chooseBackend({ ...base, hypervisor: 'auto', kvm: async () => kvm, version: versions(['qemu']) }), { backend: 'qemu', accel: 'kvm', notes: ['not cloud-hypervisor: chv is not installed'] })
  t.match(await chooseBackend({ ...base, hypervisor: 'auto', kvm: async () => noKvm, version: versions(['qemu', 'chv']) }), { backend: 'qemu', accel: 'tcg', notes: ['no KVM: /dev/kvm does not exist', 'not cloud-hypervisor: it needs KVM'] })
  t.match(await chooseBackend({ ...base, hypervisor: 'qemu', kvm: async () => kvm, version: versions(['qemu', 'chv']) }), { backend: 'qemu', accel: 'kvm' })
  await t.rejects(chooseBackend({ ...base, hypervisor: 'cloud-hypervisor', kvm: async () => noKvm, version: versions(['qemu', 'chv']) }), { code: 'VMM_BACKEND_UNAVAILABLE', message: /it needs KVM/ })
  await t.rejects(chooseBackend({ ...base, hypervisor: 'auto', kvm: async () => noKvm, version: versions([]) }), { code: 'VMM_BACKEND_UNAVAILABLE', message: /qemu is not installed/ })
  t.same(await kvmStatus('/nonexistent/kvm'), { usable: false, reason: '/nonexistent/kvm does not exist' })
})

t.test('manage: instances are chosen by id, unique name or build', async (t) => {
  const v = (id: string, name: string, buildId: string): InstanceView => ({ owner: '0xa', id, others: [], desired: { id, name, buildId, image: '', node: '', state: 'running', vcpus: 1, memoryMb: 1, diskGb: 1 } as never })
  const all = [v('i1', 'web', 'b1'), v('i2', 'web', 'b1'), v('i3', 'db', 'b2')]
  t.same(selectInstances(all, { instance: 'i2' }).map((x) => x.id), ['i2'])
  t.same(selectInstances(all, { instance: 'db' }).map((x) => x.id), ['i3'])
  t.same(selectInstances(all, { buildId: 'b1' }).map((x) => x.id), ['i1', 'i2'])
  t.throws(() => selectInstances(all, { instance: 'web' }), { code: 'INSTANCE_AMBIGUOUS', message: /i1, i2/ })
  t.throws(() => selectInstances(all, { instance: 'nope' }), { code: 'INSTANCE_NOT_FOUND' })
  t.throws(() => selectInstances(all, { buildId: 'b9' }), { code: 'INSTANCE_NOT_FOUND' })
})

t.test("an owner's write is ordered after the record it replaces, whatever the local clock says", async (t) => {
  t.same(timestampAfter(undefined, 1000), { ms: 1000, n: 0 })
  t.same(timestampAfter({ ms: 900, n: 7 }, 1000), { ms: 1000, n: 0 })
  t.same(timestampAfter({ ms: 5000, n: 2 }, 1000), { ms: 5000, n: 3 }, 'a clock behind the previous writer still wins')
})

const noKernel = guestImageUnavailable()
t.test("Debian's bzImage unpacks to an ELF with a PVH entry, cached by hash", { skip: noKernel ? `cannot run here: ${noKernel}` : false }, async (t) => {
  const { vmlinuz } = await guestKernel()
  const payload = await bzImagePayload(vmlinuz)
  t.match(payload, { codec: /xz|gzip|zstd/ })
  t.equal(await hasPvhEntry(vmlinuz), false, 'the bzImage itself is no ELF')
  const cache = t.testdir()
  const first = await bootableKernel(vmlinuz, 'k1', cache)
  t.same(first, { path: join(cache, 'k1.pvh'), pvh: true })
  t.equal(await hasPvhEntry(first.path), true)
  t.same(await bootableKernel(vmlinuz, 'k1', cache), first, 'the second call uses the cache')

  const notKernel = join(cache, 'junk')
  await writeFile(notKernel, Buffer.alloc(4096, 1))
  t.same(await bootableKernel(notKernel, 'k2', cache), { path: notKernel, pvh: false }, 'anything else boots as it is')
  // an ELF without the note (here: the node binary) is not used for PVH
  t.equal(await hasPvhEntry(process.execPath), false)
})
