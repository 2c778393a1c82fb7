import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { writeDesiredRecord } from '../../plugins/instances/lib/views.js'
import type { DesiredInstance, ObservedInstance } from '../../plugins/instances/index.js'
import { until } from '../helpers/form.js'
import { FormnetLab, type LabNode } from '../helpers/formnet-lab.js'
import { guestImageUnavailable, putGuestImage } from '../helpers/guest-image.js'
import { netnsUnavailable } from '../helpers/netns.js'

/**
 * Three nodes in network namespaces on one LAN, a replica shipped before the third node existed,
 * and QEMU (TCG) VMs: the replica's node is cut off from the LAN and heals, then dies. Node 1 holds
 * the image but has no room for the replica, so its fallback is the node that joined later.
 */

const missing = netnsUnavailable(['qemu-system-x86_64', 'wireguard-go']) ?? guestImageUnavailable()
const WINDOW = 12_000
/** Progress on stderr: a stuck run shows where it is. */
const step = (what: string) => process.stderr.write(`[fence ${new Date().toISOString()}] ${what}\n`)

t.test('a partitioned host fences its replica, the late-joined node runs it, one copy after healing; then the host dies and the late node takes it again', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const lab = new FormnetLab(t)
  const config = (i: number, memory: number) => ({
    node: ['hypervisor = "qemu"', 'nat = false', 'shutdown_timeout_s = 5', 'boot_timeout_s = 600'],
    'node.resources': ['vcpus = 2', `memory_mb = ${memory}`, 'disk_gb = 10'],
    net: [`bridge_name = "${lab.net.name(`fb${i}`)}"`],
  })
  const n1 = await lab.addNode({ config: config(1, 128), startTimeoutMs: 300_000 })
  const n2 = await lab.addNode({ config: config(2, 1024), startTimeoutMs: 300_000 })
  const account = async (n: LabNode) => (await createClient({ socket: n.env.socket }).get<{ address: string }>('/v1/state/info')).address
  const [a1, a2] = [await account(n1), await account(n2)]

  step('nodes 1 and 2 up')
  const dev = await lab.addDeveloper(n1)
  step('developer ready')
  const passwordFile = join(dev.env.dir, 'password')
  await writeFile(passwordFile, 'correct horse battery staple\n')
  const signer = await loadSigner({ configDir: dev.env.configDir, passwordFile })
  const buildId = 'f'.repeat(12) + Date.now().toString(16)
  const image = await putGuestImage(String(n1.env.env.FORM_DATA_DIR), { owner: signer.address, buildId })
  // blobs written behind the node's back are not announced: upload each through its API, which announces it
  for (const hash of [image.image, image.manifest.kernel.sha256, image.manifest.initrd!.sha256, image.manifest.disk.sha256]) {
    const file = join(String(n1.env.env.FORM_DATA_DIR), 'blobs', 'sha256', hash)
    const up = spawnSync('curl', ['-sSf', '--unix-socket', n1.env.socket, '-H', 'content-type: application/octet-stream', '--data-binary', `@${file}`, 'http://node/v1/net/blobs'], { encoding: 'utf8' })
    if (up.status !== 0) throw new Error(`announcing blob ${hash} failed: ${up.stderr}`)
  }
  const desired: DesiredInstance = { buildId, image: image.image, node: a2, state: 'running', name: 'web-1', vcpus: 1, memoryMb: 256, diskGb: 1, candidates: [a2, a1], failoverMs: WINDOW }
  await writeDesiredRecord(createClient({ socket: n1.env.socket }), signer, 'web-1', desired)

  const observed = async (on: LabNode, host: string) =>
    (await createClient({ socket: on.env.socket }).get<{ value: ObservedInstance }>(`/v1/state/records/instances/${signer.address}/web-1/observed/${host}`).catch(() => undefined))?.value
  /** QEMU processes per node namespace: the copies of the replica that run. */
  const copies = (nodes: LabNode[]) =>
    nodes.map((n) => spawnSync('ip', ['netns', 'pids', n.ns], { encoding: 'utf8' }).stdout.split('\n').filter((pid) => pid && /qemu/.test(readComm(pid))).length)
  const runningOn = (who: LabNode, host: string, what: string, timeoutMs = 600_000) =>
    until(what, async () => ((await observed(who, host))?.state === 'running' ? true : undefined), timeoutMs)

  step('desired record written')
  let t0 = Date.now()
  await runningOn(n1, a2, 'web-1 running on node 2')
  t.comment(`web-1 running on node 2 after ${Math.round((Date.now() - t0) / 1000)} s`)

  step('web-1 running on node 2')
  // node 3 joins after the ship: it is in no record's candidates
  const n3 = await lab.addNode({ config: config(3, 1024), startTimeoutMs: 300_000 })
  const a3 = await account(n3)
  await until('node 3 known to node 1 and node 2', async () => {
    for (const n of [n1, n2]) {
      const keys = (await createClient({ socket: n.env.socket }).get<{ records: { key: string }[] }>('/v1/state/records/nodes')).records.map((r) => r.key)
      if (!keys.includes(a3)) return undefined
    }
    return true
  }, 120_000)
  // past node 3's startup grace (every node counts as alive then), so the cut is judged by heartbeats
  await new Promise((r) => setTimeout(r, 32_000))
  const all = [n1, n2, n3]
  t.same(copies(all), [0, 1, 0], 'before the cut: one copy, on node 2')

  step('node 3 joined; cutting node 2')
  // the cut: node 2 loses the LAN (the others and their formnet)
  spawnSync('ip', ['-n', n2.ns, 'link', 'set', 'eth0', 'down'])
  t0 = Date.now()
  const view = await until('node 2 to see only itself', async () => {
    const l = await createClient({ socket: n2.env.socket }).get<{ self: string; alive: string[] }>(`/v1/state/liveness?window=${WINDOW}`)
    return l.alive.length === 1 ? l : undefined
  }, 120_000)
  t.same(view.alive, [a2], "node 2's liveness, judged by node 2: only itself")
  const fenced = await until('node 2 to fence web-1 and node 3 to run it', async () => {
    const [on2, on3] = [await observed(n2, a2), await observed(n3, a3)]
    return on2?.state === 'deleted' && on3?.state === 'running' && copies(all).join() === '0,0,1' ? on2 : undefined
  }, 600_000)
  t.comment(`partition: node 2 fenced and node 3 ran web-1 ${Math.round((Date.now() - t0) / 1000)} s after the cut (window ${WINDOW / 1000} s)`)
  t.match(fenced.reason, /fenced: this node sees 1 of the 3 members/, 'node 2 says why it stopped web-1')
  const alive3 = (await createClient({ socket: n1.env.socket }).get<{ alive: string[] }>(`/v1/state/liveness?window=${WINDOW}`)).alive
  t.same(alive3, [a1, a3].sort(), "node 1's view: nodes 1 and 3 alive")

  step('fenced; healing')
  // heal: web-1 returns to node 2, its chosen node; node 3 lets it go
  spawnSync('ip', ['-n', n2.ns, 'link', 'set', 'eth0', 'up'])
  t0 = Date.now()
  await until('web-1 back on node 2 alone', async () => {
    const on2 = await observed(n3, a2)
    return on2?.state === 'running' && (await observed(n3, a3))?.state === 'deleted' && copies(all).join() === '0,1,0' ? true : undefined
  }, 600_000)
  t.comment(`heal: one copy, on node 2 again, ${Math.round((Date.now() - t0) / 1000)} s after the link came back`)
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 2000))
    t.same(copies(all), [0, 1, 0], `after healing, check ${i + 1}: exactly one copy, on node 2`)
  }

  step('healed; killing node 2')
  // node 2 dies: node 1 (its only shipped candidate) has no room, node 3 (joined later) takes it
  t.ok(lab.net.killAll(n2.ns) > 0, 'node 2 is killed')
  t0 = Date.now()
  await runningOn(n1, a3, 'web-1 running on node 3')
  t.comment(`node death: web-1 running on node 3 ${Math.round((Date.now() - t0) / 1000)} s after node 2 died`)
  t.same(copies([n1, n3]), [0, 1], 'one copy, on node 3')
})

function readComm(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8')
  } catch {
    return ''
  }
}
