import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FormnetLab, type LabNode } from '../helpers/formnet-lab.js'
import { netnsUnavailable } from '../helpers/netns.js'

const missing = netnsUnavailable(['wireguard-go', 'ping'])

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('formnet: three nodes and a developer in network namespaces', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const lab = new FormnetLab(t)
  const nodes: LabNode[] = []
  for (let i = 0; i < 3; i++) nodes.push(await lab.addNode())

  const statuses = await Promise.all(nodes.map((n) => lab.status(n)))
  t.ok(statuses.every((s) => s.enabled), 'formnet runs on every node')
  t.equal(new Set(statuses.map((s) => s.subnet)).size, 3, 'each node claimed its own subnet')
  const addr = statuses.map((s) => s.address)

  t.ok(
    await lab.until(async () => (await Promise.all(nodes.map((n) => lab.status(n)))).every((s) => s.peers.filter((p) => p.kind === 'node').length === 2)),
    'every node has the two others as WireGuard peers (from state)',
  )
  for (const [i, n] of nodes.entries()) {
    for (const [j] of nodes.entries()) {
      if (i !== j) t.ok(await lab.ping(n.ns, addr[j]), `node ${i + 1} pings node ${j + 1} over formnet (${addr[j]})`)
    }
  }
  // the interface holds only the node's /32; its routes are exactly the other nodes' subnets
  const subnets = statuses.map((s) => s.subnet)
  const routes = (n: LabNode) => lab.routes(n.ns, n.interface).map((r) => r.dst).sort()
  const others = (i: number) => subnets.filter((_, j) => j !== i).sort()
  for (const [i, n] of nodes.entries()) {
    t.same(lab.addresses(n.ns, n.interface), [`${addr[i]}/32`], `node ${i + 1}'s formnet interface holds only ${addr[i]}/32`)
    t.same(routes(n), others(i), `node ${i + 1} routes exactly the other nodes' subnets to formnet`)
    t.same((await lab.status(n)).routes.sort(), others(i), 'and form net status shows them')
  }

  // a developer joins through node 1 and brings the interface up
  const dev = await lab.addDeveloper(nodes[0])
  const joined = JSON.parse(lab.ok(await lab.form(dev, ['manage', 'join', '--interface', dev.interface, '--json'])).stdout)
  t.match(joined, { cidr: '198.18.0.0/15', node: { formnetAddress: addr[0] } })
  t.ok(statuses[0].subnet && joined.address.startsWith(statuses[0].subnet.split('.').slice(0, 3).join('.')), `the address ${joined.address} is in node 1's subnet ${statuses[0].subnet}`)
  const again = JSON.parse(lab.ok(await lab.form(dev, ['manage', 'join', '--json'])).stdout)
  t.equal(again.address, joined.address, 'joining again keeps the address')

  lab.ok(await lab.form(dev, ['manage', 'formnet-up', '--detach', '--interval-ms', '1000']))
  for (const [j] of nodes.entries()) t.ok(await lab.ping(dev.ns, addr[j]), `the developer pings node ${j + 1} (${addr[j]})`)
  const devStatus = JSON.parse(lab.ok(await lab.form(dev, ['net', 'status', '--developer', '--json'])).stdout)
  t.match(devStatus, { role: 'developer', enabled: true, address: joined.address })
  t.equal(devStatus.peers.length, 3, 'the developer peers with all three nodes')
  t.ok(devStatus.peers.every((p: { lastHandshake: number }) => p.lastHandshake > 0), 'and has a handshake with each')
  for (const n of nodes) {
    t.ok(await lab.until(async () => (await lab.status(n)).peers.some((p) => p.kind === 'developer' && p.allowedIps.includes(`${joined.address}/32`))), 'every node lists the developer peer')
  }
  // routes follow the peer set: node 1 routes the /32 of the developer it admitted (its subnet is the bridge's)
  t.ok(await lab.until(() => routes(nodes[0]).join() === [...others(0), `${joined.address}/32`].sort().join()), 'node 1 adds a /32 route for the developer it admitted')
  t.same(routes(nodes[1]), others(1), 'node 2 reaches the developer through node 1\'s subnet route: no route added')
  t.same(lab.addresses(dev.ns, dev.interface), [`${joined.address}/32`], 'the developer\'s interface holds only its /32')
  t.same(lab.routes(dev.ns, dev.interface).map((r) => r.dst).sort(), [...subnets].sort(), 'the developer routes exactly the three nodes\' subnets')
  const human = lab.ok(await lab.form({ ns: nodes[1].ns, env: nodes[1].env }, ['net', 'status'])).stdout
  t.match(human, /developer/, 'form net status shows the developer among the peers')

  // a restarted node restores the mesh
  await lab.restart(nodes[1])
  const after = await lab.status(nodes[1])
  t.equal(after.address, addr[1], 'the restarted node keeps its subnet and address')
  t.ok(await lab.ping(nodes[0].ns, addr[1]), 'node 1 reaches the restarted node 2')
  t.ok(await lab.ping(nodes[1].ns, addr[2]), 'the restarted node 2 reaches node 3')
  t.ok(await lab.ping(dev.ns, addr[1]), 'the developer reaches the restarted node 2')

  // a node killed with SIGKILL leaves its wireguard-go behind; the restarted node replaces it
  const wgPidFile = join(nodes[2].env.runtimeDir, 'formnet-wireguard.pid')
  const orphan = Number(readFileSync(wgPidFile, 'utf8'))
  await nodes[2].proc.stop('SIGKILL')
  t.ok(alive(orphan), 'the killed node\'s wireguard-go still runs')
  await lab.restart(nodes[2])
  t.notOk(alive(orphan), 'the restarted node stopped the leftover wireguard-go')
  t.ok(await lab.ping(nodes[0].ns, addr[2]), 'node 1 reaches node 3 after its crash and restart')
  t.ok(await lab.ping(dev.ns, addr[2]), 'the developer reaches node 3 after its crash and restart')

  // wireguard-go dying under a running node is restarted and reconfigured
  const wg1 = Number(readFileSync(join(nodes[0].env.runtimeDir, 'formnet-wireguard.pid'), 'utf8'))
  process.kill(wg1, 'SIGKILL')
  t.ok(await lab.until(() => Number(readFileSync(join(nodes[0].env.runtimeDir, 'formnet-wireguard.pid'), 'utf8')) !== wg1), 'node 1 started a new wireguard-go')
  t.ok(await lab.ping(nodes[1].ns, addr[0]), 'node 2 reaches node 1 again')
  t.ok(await lab.ping(dev.ns, addr[0]), 'the developer reaches node 1 again')

  // the developer leaves: every node drops the peer
  const left = JSON.parse(lab.ok(await lab.form(dev, ['manage', 'leave', '--json'])).stdout)
  t.match(left, { left: true, removed: true, stoppedInterface: true })
  for (const [i, n] of nodes.entries()) {
    t.ok(await lab.until(async () => !(await lab.status(n)).peers.some((p) => p.allowedIps.includes(`${joined.address}/32`))), `node ${i + 1} removed the developer`)
  }
  t.ok(await lab.until(() => routes(nodes[0]).join() === others(0).join()), 'node 1 removed the developer\'s /32 route')
  t.notOk(lab.pingOnce(dev.ns, addr[0]), 'the developer no longer reaches formnet')
})

/** The process group of a process (field 5 of /proc/<pid>/stat, after the parenthesised name). */
const processGroup = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[2])

t.test('formnet: a Ctrl-C at the terminal of a foreground node does not reach its wireguard-go', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  // a terminal signals the whole foreground process group; the node stops wireguard-go itself
  // (it used to exit with the node's group, and the node restarted it while stopping)
  const lab = new FormnetLab(t)
  const node = await lab.addNode()
  const wg = Number(readFileSync(join(node.env.runtimeDir, 'formnet-wireguard.pid'), 'utf8'))
  t.not(processGroup(wg), processGroup(node.proc.child.pid!), 'wireguard-go is outside the node\'s process group')
  t.equal(await node.proc.stop('SIGINT'), 0, 'the node stops cleanly on SIGINT')
  t.notOk(alive(wg), 'and stopped its wireguard-go')
})

t.test('formnet: join needs a signature and a valid key; formnet-up needs a join', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const lab = new FormnetLab(t)
  const node = await lab.addNode()
  const { createClient } = await import('../../core/client.js')
  const { signRequest } = await import('../../core/auth/sign.js')
  const { walletSigner } = await import('../../plugins/kit/lib/signer.js')
  const { createWallet } = await import('../../plugins/kit/lib/wallet.js')
  await t.rejects(createClient({ socket: node.env.socket }).post('/v1/net/join', { publicKey: 'x' }), { code: 'AUTH_MISSING' })
  const signer = walletSigner(createWallet())
  const signed = createClient({ socket: node.env.socket, signer: (req) => signRequest({ ...req, signer }) })
  await t.rejects(signed.post('/v1/net/join', { publicKey: 'not-a-key' }), { code: 'FORMNET_BAD_KEY' })
  t.same((await lab.status(node)).peers, [], 'nothing was admitted')

  const dev = await lab.addDeveloper(node)
  const r = await lab.form(dev, ['manage', 'formnet-up'])
  t.equal(r.code, 1)
  t.match(r.stderr, /no formnet address yet/, 'formnet-up before join says to join first')
})
