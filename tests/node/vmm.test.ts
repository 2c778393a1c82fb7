import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { walletSigner } from '../../plugins/kit/lib/signer.js'
import { createWallet } from '../../plugins/kit/lib/wallet.js'
import { processState } from '../../plugins/node/lib/hypervisor/process.js'
import { shortName } from '../../plugins/node/lib/vmm/guest.js'
import { FORM_BIN, until } from '../helpers/form.js'
import { guestImageUnavailable, putGuestImage } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'
import { builderSkip } from '../helpers/builder.js'

const missing = netnsUnavailable(['qemu-system-x86_64', 'iptables']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : false
// the first test boots an image made by the builder
const skipBuilt = skip || builderSkip()

const alive = async (pid: number | undefined) => pid !== undefined && (await processState(pid)) === 'alive'

t.test('an instance of an image built by form pack build boots under QEMU, answers pings, shows its console, stops, starts and is deleted', { skip: skipBuilt }, async (t) => {
  // the subnet comes from the node's claim in state (the formnet service claims one even with formnet off)
  const lab = new VmmLab(t, { nat: true, builtImage: true })
  await lab.setUp()
  const me = await lab.nodeAddress()

  const status = JSON.parse(lab.ok(await lab.form(['node', 'status', '--json'])).stdout)
  const vmm = status.services.find((s: { name: string }) => s.name === 'vmm')
  t.match(vmm.info, { backend: /^qemu-(tcg|kvm)$/, bridge: lab.bridge, instances: 0 }, 'the backend is reported')
  t.notOk(lab.link(lab.bridge), 'no bridge before the first instance')

  // Debian with systemd: the image's DISK is 5 GB, and it wants more memory than the busybox guest
  const size = { diskGb: 5, memoryMb: 512 }
  await lab.createInstance('web-1', size)
  const running = await lab.until('web-1', 'running')
  t.match(running, { state: 'running', ip: /^\d+\.\d+\.\d+\.2$/, mac: /^02(:[0-9a-f]{2}){5}$/, backend: vmm.info.backend })
  t.ok(await alive(running.pid), `the VM process ${running.pid} runs`)
  t.ok(lab.link(lab.bridge), 'the bridge exists in the node namespace')
  t.equal(spawnSync('ip', ['netns', 'exec', lab.ns, 'cat', `/proc/sys/net/ipv4/conf/${lab.bridge}/proxy_arp`], { encoding: 'utf8' }).stdout.trim(), '1', 'the bridge answers ARP for addresses routed elsewhere (developers of this subnet on formnet)')
  const tap = `fv${shortName(lab.owner, 'web-1')}`
  t.ok(lab.link(tap), 'the instance has its tap')
  t.match(lab.iptables('nat'), new RegExp(`MASQUERADE.*form-vmm:${lab.bridge}|form-vmm:${lab.bridge}.*MASQUERADE`), 'NAT is installed')
  t.ok(lab.ping(running.ip!), 'the guest answers a ping from the host side of the bridge')

  // the entrypoint's report may land just after FORM-READY
  const logs = await until('the entrypoint to report on the console', async () => {
    const r = lab.ok(await lab.form(['manage', 'logs', 'web-1']))
    return /boots=1\b/.test(r.stdout) ? r : undefined
  })
  t.match(logs.stdout, 'FORM-READY', 'the console log shows the guest reported ready')
  t.match(logs.stdout, /boots=1\b/, 'the guest mounted its disk (first boot)')
  t.match(logs.stdout, `ip=${running.ip}/`, 'the guest took its address from the kernel command line')

  const list = JSON.parse(lab.ok(await lab.form(['manage', 'list', '--json'])).stdout)
  t.match(list.instances, [{ id: 'web-1', desired: 'running', state: 'running', ip: running.ip, node: me, buildId: lab.buildId }])
  const ips = JSON.parse(lab.ok(await lab.form(['manage', 'get-ip', '--build-id', lab.buildId, '--json'])).stdout)
  t.same(ips.replicas.map((r: { ip: string }) => r.ip), [running.ip])
  t.equal(lab.ok(await lab.form(['manage', 'get-ip', '--build-id', lab.buildId])).stdout.trim(), running.ip)

  // an instance that does not fit is refused, never over-committed: 2 vCPUs offered, 1 in use
  await lab.createInstance('too-big', { vcpus: 2, ...size })
  const refused = await lab.until('too-big', 'failed')
  t.match(refused.reason, /does not fit on this node: 2 vCPU requested, 1 of 2 free/)
  t.notOk(refused.pid, 'no VM was started for it')
  // refused instances retry with backoff: once web-1 stops it would fit and take the vCPUs
  lab.ok(await lab.form(['manage', 'delete', 'too-big', '--yes', '--wait']))

  // stop: the QEMU process exits (the guest powers off on the ACPI button)
  const stopped = JSON.parse(lab.ok(await lab.form(['manage', 'stop', 'web-1', '--wait', '--json'])).stdout)
  t.match(stopped.instances, [{ id: 'web-1', state: 'stopped', shutdown: { how: 'powered-off', ms: Number } }], 'the built image powered itself off on the button, nothing was forced')
  t.notOk(stopped.instances[0].shutdown.reason)
  t.match(lab.ok(await lab.form(['manage', 'logs', 'web-1'])).stdout, 'form-power-button: the power button was pressed: powering off', 'the console shows the guest heard the button')
  t.notOk(await alive(running.pid), 'the VM process is gone')
  t.notOk(lab.link(tap), 'the tap went with the VM')
  t.match(await lab.observed('web-1'), { state: 'stopped', ip: running.ip })
  t.notOk((await lab.observed('web-1'))?.pid, 'a stopped instance reports no pid')

  // start: boots again from the same disk, with the same address; `logs -f` follows the new boot
  const follower = spawn(process.execPath, [FORM_BIN, 'manage', 'logs', 'web-1', '-f', '--bytes', '1'], { env: lab.env.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => follower.kill('SIGKILL'))
  let followed = ''
  follower.stdout.on('data', (d) => (followed += d))
  lab.ok(await lab.form(['manage', 'start', 'web-1', '--wait']))
  const again = await lab.until('web-1', 'running', (o) => o.pid !== running.pid)
  await until('the follower to see the second boot', async () => (/boots=2\b/.test(followed) ? true : undefined), 30_000)
  follower.kill()
  t.match(followed, /boots=2\b/, '`form manage logs -f` printed the second boot as it came')
  t.equal(again.ip, running.ip, 'same address')
  t.not(again.pid, running.pid, 'a new VM process')
  t.ok(lab.ping(again.ip!), 'answers pings again')
  t.match(lab.ok(await lab.form(['manage', 'logs', 'web-1'])).stdout, /boots=2\b/, 'the disk kept its data across stop and start')

  // the console is its owner's alone
  const stranger = createClient({ socket: lab.env.socket, signer: (req) => signRequest({ ...req, signer: walletSigner(createWallet()) }) })
  await t.rejects(stranger.post('/v1/node/instances/console', { owner: lab.owner, id: 'web-1' }), { code: 'VMM_NOT_OWNER' })
  await t.rejects(lab.client.post('/v1/node/instances/console', { owner: lab.owner, id: 'web-1' }), { code: 'AUTH_MISSING' })

  // delete: VM, disk copy, tap and address go; the record says deleted
  const dir = join(String(lab.env.env.FORM_DATA_DIR), 'vmm', 'instances', shortName(lab.owner, 'web-1'))
  t.ok(existsSync(join(dir, 'disk.raw')), 'the disk copy exists before delete')
  lab.ok(await lab.form(['manage', 'delete', 'web-1', '--yes', '--wait']))
  const gone = await lab.observed('web-1')
  t.match(gone, { state: 'deleted' })
  t.notOk(gone?.ip, 'the address is released')
  t.notOk(await alive(again.pid), 'the VM process is gone')
  t.notOk(existsSync(dir), 'the disk copy and console log are removed')
  t.notOk(lab.link(tap), 'the tap is removed')
  const bad = await lab.form(['manage', 'start', 'web-1'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /INSTANCE_DELETED/)

  // the node going away removes what it created
  await lab.node.stop()
  t.notOk(lab.link(lab.bridge), 'the bridge is removed when the node stops')
  t.notMatch(lab.iptables('nat'), /form-vmm/, 'and so are the NAT rules')
})

t.test('a node killed with SIGKILL re-adopts its running VM, restarts a VM that died meanwhile, and keeps a stopped one stopped', { skip }, async (t) => {
  const lab = new VmmLab(t, { bridgeSubnet: '10.77.3.0/24', nat: true })
  await lab.setUp()
  await lab.createInstance('keep')
  await lab.createInstance('idle', { state: 'stopped' })
  const first = await lab.until('keep', 'running')
  t.equal(first.ip, '10.77.3.2', 'addresses come from [net] bridge_subnet, from .2 up')
  await lab.until('idle', 'stopped')

  await lab.node.stop('SIGKILL')
  t.ok(await alive(first.pid), 'the VM outlives its node')
  const restartedAt = Date.now()
  await lab.start()
  // only records the new node process wrote count, not what the killed one left
  const adopted = await lab.until('keep', 'running', (o) => o.updatedAt >= restartedAt)
  t.equal(adopted.pid, first.pid, 'the same VM process was adopted')
  t.ok(lab.ping(adopted.ip!), 'and still answers')
  t.ok(await lab.until('idle', 'stopped', (o) => o.updatedAt >= restartedAt), 'the stopped instance stays stopped')
  t.match(lab.node.output(), /adopted a running VM/)

  // the VM dies while the node is down: the next run boots it again
  await lab.node.stop('SIGKILL')
  process.kill(first.pid!, 'SIGKILL')
  while (await alive(first.pid)) await new Promise((r) => setTimeout(r, 100))
  await lab.start()
  // the record still says what the killed node last saw until the new one has booted the VM again
  const restarted = await lab.until('keep', 'running', (o) => o.pid !== first.pid)
  t.not(restarted.pid, first.pid, 'a new VM process')
  t.equal(restarted.ip, first.ip, 'with the same address')
  t.ok(await alive(restarted.pid))
  t.ok(lab.ping(restarted.ip!), 'and it answers')
  t.match(await lab.observed('idle'), { state: 'stopped' })
  t.match(lab.ok(await lab.form(['manage', 'logs', 'keep'])).stdout, /boots=2\b/, 'it booted again from its own disk')

  const masquerades = lab.iptables('nat').split('\n').filter((l) => l.includes('MASQUERADE') && l.includes('form-vmm'))
  t.equal(masquerades.length, 1, 'three runs of the node installed the NAT rule once')

  // a clean stop takes the VMs down, and removes what the killed runs left too; it says how each VM went
  const nodeStop = JSON.parse(lab.ok(await lab.form(['node', 'stop', '--json'])).stdout)
  await lab.node.exited
  t.match(nodeStop, { stopped: true, vms: [{ instance: /\/keep$/, how: 'powered-off', ms: Number }] }, 'form node stop: the guest powered off on the button')
  t.notOk(await alive(restarted.pid), 'a clean node stop stops its VMs')
  t.notOk(lab.link(lab.bridge), 'the bridge is gone')
  t.notMatch(lab.iptables('nat') + lab.iptables('filter'), /form-vmm/, 'no NAT or forwarding rule is left')
  await lab.start()
  const rebooted = await lab.until('keep', 'running', (o) => o.pid !== restarted.pid)
  t.not(rebooted.pid, restarted.pid, 'and the next start boots what should run')

  // a guest that dies during boot: its init exits, the kernel panics (panic=-1, -no-reboot ends QEMU)
  const broken = await putGuestImage(String(lab.env.env.FORM_DATA_DIR), { owner: lab.owner, buildId: 'broken', init: '#!/bin/busybox sh\necho "form-test-guest: giving up"\nexit 3\n' })
  await lab.createInstance('crash', { image: broken.image, buildId: 'broken' })
  const crashed = await lab.until('crash', 'failed')
  t.match(crashed.reason, /the VM process \(pid \d+\) exited on its own/)
  t.notOk('consoleTail' in crashed, 'the replicated record holds no console output')
  t.notMatch(JSON.stringify(crashed), /giving up|Kernel panic/, 'nothing the console printed')
  const listed = JSON.parse(lab.ok(await lab.form(['manage', 'list', '--json'])).stdout).instances.find((i: { id: string }) => i.id === 'crash')
  t.match(listed.consoleTail, /Kernel panic - not syncing: Attempted to kill init/, 'manage list asks the hosting node for the end of the console')
  t.notOk(crashed.pid)
  t.match(lab.ok(await lab.form(['manage', 'logs', 'crash'])).stdout, 'form-test-guest: giving up', 'the console log of a failed instance is still there')
  t.match(JSON.parse(lab.ok(await lab.form(['manage', 'list', '--json'])).stdout).instances, [{ id: 'crash', state: 'failed', reason: /exited on its own/ }, { id: 'idle' }, { id: 'keep', state: 'running' }])
  const waited = await lab.form(['manage', 'start', 'crash', '--wait', '--json'])
  t.equal(waited.code, 1, 'start --wait reports the failure')
  t.match(JSON.parse(waited.stdout), { error: { code: 'INSTANCE_FAILED', message: /crash: the VM process/ } })
  lab.ok(await lab.form(['manage', 'delete', 'crash', '--yes', '--wait']))

  // a guest that ignores the power button: the node forces it off after shutdown_timeout_s and says so
  const deaf = await putGuestImage(String(lab.env.env.FORM_DATA_DIR), { owner: lab.owner, buildId: 'deaf', init: '#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\necho FORM-READY\nwhile :; do /bin/busybox sleep 3600; done\n' })
  await lab.createInstance('deaf', { image: deaf.image, buildId: 'deaf' })
  await lab.until('deaf', 'running')
  const forced = JSON.parse(lab.ok(await lab.form(['manage', 'stop', 'deaf', '--wait', '--json'])).stdout).instances[0]
  t.match(forced, { state: 'stopped', shutdown: { how: 'forced', reason: /the guest did not power off within 10 s of the ACPI power button \(\[node\] shutdown_timeout_s\)/ } }, 'manage stop says it was forced, and why')
  t.ok(forced.shutdown.ms >= 10_000, `after the shutdown timeout (${forced.shutdown.ms} ms)`)
  t.match(lab.ok(await lab.form(['manage', 'list'])).stdout, /^deaf: its last stop was forced: the guest did not power off within 10 s/m, 'manage list tells it too')
})
