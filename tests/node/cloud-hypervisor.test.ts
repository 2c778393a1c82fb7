import t from 'tap'
import { spawnSync } from 'node:child_process'
import { kvmStatus } from '../../plugins/node/lib/hypervisor/detect.js'
import { processState } from '../../plugins/node/lib/hypervisor/process.js'
import { guestImageUnavailable } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'

// Cloud Hypervisor needs its binary and a usable KVM; the QEMU tests carry the suite where it cannot run.
async function unavailable(): Promise<string | undefined> {
  if (spawnSync('sh', ['-c', 'command -v cloud-hypervisor']).status !== 0) return 'the cloud-hypervisor binary is not installed'
  const kvm = await kvmStatus()
  if (!kvm.usable) return `KVM is not usable: ${kvm.reason}`
  return netnsUnavailable() ?? guestImageUnavailable()
}

const why = await unavailable()
if (why) t.comment(`Cloud Hypervisor tests skipped: ${why}`)

t.test('an instance boots under Cloud Hypervisor through its REST API, answers pings and powers off on stop', { skip: why ? `cannot run here: ${why}` : false }, async (t) => {
  const lab = new VmmLab(t, { hypervisor: 'cloud-hypervisor', bridgeSubnet: '10.78.4.0/24' })
  await lab.setUp()
  await lab.createInstance('ch-1')
  const running = await lab.until('ch-1', 'running')
  t.match(running, { backend: 'cloud-hypervisor', ip: '10.78.4.2' })
  t.ok(lab.ping(running.ip!), 'the guest answers a ping')
  t.match(lab.ok(await lab.form(['manage', 'logs', 'ch-1'])).stdout, 'FORM-READY')
  lab.ok(await lab.form(['manage', 'stop', 'ch-1', '--wait']))
  t.equal(await processState(running.pid!), 'gone', 'the cloud-hypervisor process exited')
  lab.ok(await lab.form(['manage', 'delete', 'ch-1', '--yes', '--wait']))
})
