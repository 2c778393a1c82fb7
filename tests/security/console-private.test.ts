import t from 'tap'
import { createClient } from '../../core/client.js'
import { signRequest } from '../../core/auth/sign.js'
import { walletSigner } from '../../plugins/kit/lib/signer.js'
import { createWallet } from '../../plugins/kit/lib/wallet.js'
import { guestImageUnavailable, putGuestImage } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'
import { VmmLab } from '../helpers/vmm-lab.js'

/**
 * Issue 16, "instance console tails sit in public observed records": a failed instance's record is
 * replicated to every node, and used to carry the end of its console, where a guest prints what it
 * likes (secrets included). Now the record keeps the reason only; the hosting node serves the
 * console to the owner alone, and `form manage list` asks it for a failed instance's last lines.
 */

const missing = netnsUnavailable(['qemu-system-x86_64', 'iptables']) ?? guestImageUnavailable()
const skip = missing ? `cannot run here: ${missing}` : false
const secret = `console-secret-${process.pid}-${Date.now()}`

t.test("a failed instance's console stays on its node, for its owner", { skip }, async (t) => {
  const lab = new VmmLab(t)
  await lab.setUp()
  // a guest that prints a secret and dies during boot (its init exits: the kernel panics, QEMU ends)
  const broken = await putGuestImage(String(lab.env.env.FORM_DATA_DIR), { owner: lab.owner, buildId: 'leaky', init: `#!/bin/busybox sh\necho "${secret}"\nexit 3\n` })
  await lab.createInstance('leaky', { image: broken.image, buildId: 'leaky' })
  const failed = await lab.until('leaky', 'failed')
  t.match(failed.reason, /exited on its own/, 'the record says why it failed')

  const records = JSON.stringify(await lab.client.get('/v1/state/records/instances?prefix=&limit=10000'))
  t.notMatch(records, secret, 'no instance record in state holds what the console printed')
  t.notMatch(records, /Kernel panic/, 'nor any console line')

  // the owner sees the end of the console, fetched from the hosting node
  const listed = JSON.parse(lab.ok(await lab.form(['manage', 'list', '--json'])).stdout).instances.find((i: { id: string }) => i.id === 'leaky')
  t.match(listed, { state: 'failed', reason: /exited on its own/, consoleTail: /Kernel panic/ }, 'manage list --json carries the console tail from the node')
  const human = lab.ok(await lab.form(['manage', 'list'])).stdout
  t.match(human, /leaky: the VM process \(pid \d+\) exited on its own\n(\s+\| .*\n)+/, 'manage list prints the last lines under the reason')
  t.match(lab.ok(await lab.form(['manage', 'logs', 'leaky'])).stdout, secret, 'manage logs gives the owner the whole console')

  // a stranger's wallet gets nothing, whichever way it asks
  const stranger = createClient({ socket: lab.env.socket, signer: (req) => signRequest({ ...req, signer: walletSigner(createWallet()) }) })
  await t.rejects(stranger.post('/v1/node/instances/console', { owner: lab.owner, id: 'leaky' }), { code: 'VMM_NOT_OWNER' }, 'naming the owner: refused')
  await t.rejects(stranger.post('/v1/node/instances/console', { id: 'leaky' }), { code: 'VMM_INSTANCE_NOT_HERE' }, 'as its own instance: there is none')

  // and the node keeps working: the lab's own instance boots
  await lab.createInstance('fine')
  t.match(await lab.until('fine', 'running'), { state: 'running' }, 'another instance runs on the same node')
})
