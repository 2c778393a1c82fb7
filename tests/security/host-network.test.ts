import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { FormnetLab, type LabNode } from '../helpers/formnet-lab.js'
import { netnsUnavailable } from '../helpers/netns.js'

/**
 * A node never breaks its host: formnet puts only its own /32 on its interface and routes each
 * peer's subnet on its own, never over a network the host already uses. Each node here runs on a
 * host (a namespace) that sits on a 10.x LAN like many clouds: an address 10.1.0.2/24 on eth1, a LAN
 * route 10.1.2.0/24 via 10.1.0.254, and its DNS resolver 10.1.1.53 reached through the default route.
 */

const missing = netnsUnavailable(['wireguard-go'])
const skip = missing ? `cannot run here: ${missing}` : false

const RESOLVER = '10.1.1.53'
const LAN_HOST = '10.1.2.7'

/** Puts the host's 10.x networks into a node's namespace before the node starts. */
function tenNetHost(lab: FormnetLab) {
  const hub = lab.net.hub('fl')
  return async (_env: unknown, ns: string) => {
    lab.net.plug(ns, hub, '10.1.0.2/24', 'eth1')
    lab.net.run(['ip', '-n', ns, 'route', 'add', '10.1.2.0/24', 'via', '10.1.0.254', 'dev', 'eth1'])
    lab.net.run(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.1.0.1', 'dev', 'eth1'])
    await lab.resolvers(ns, [RESOLVER])
  }
}

/** How the namespace routes an address: device and gateway. */
function routeTo(ns: string, address: string): { dev: string; gateway?: string } {
  const [r] = JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'route', 'get', address], { encoding: 'utf8' }).stdout || '[{}]') as { dev: string; gateway?: string }[]
  return { dev: r.dev, gateway: r.gateway }
}

/** The namespace's routes that are not on `formnet` (its formnet interface), sorted. */
function hostRoutes(lab: FormnetLab, ns: string, formnet: string): string[] {
  return lab
    .routes(ns)
    .filter((r) => r.dev !== formnet)
    .map((r) => JSON.stringify(r))
    .sort()
}

interface Before {
  routes: string[]
  resolver: { dev: string; gateway?: string }
  lan: { dev: string; gateway?: string }
}

async function startWatched(lab: FormnetLab, config: string[]): Promise<{ node?: LabNode; error?: Error; before: Before; ns: () => string }> {
  const prepare = tenNetHost(lab)
  let before: Before | undefined
  let ns = ''
  const i = lab.nodes.length + 1
  try {
    const node = await lab.addNode({
      config: { net: config },
      beforeStart: async (env, n) => {
        ns = n
        await prepare(env, n)
        before = { routes: hostRoutes(lab, n, lab.net.name(`fw${i}`)), resolver: routeTo(n, RESOLVER), lan: routeTo(n, LAN_HOST) }
      },
    })
    return { node, before: before!, ns: () => ns }
  } catch (error) {
    return { error: error as Error, before: before!, ns: () => ns }
  }
}

function unchanged(t: Test, lab: FormnetLab, ns: string, formnet: string, before: Before) {
  t.same(hostRoutes(lab, ns, formnet), before.routes, 'the host\'s routes are unchanged (ip -j route, before and after)')
  t.same(routeTo(ns, RESOLVER), before.resolver, `the resolver ${RESOLVER} is still reached through eth1 via 10.1.0.1`)
  t.same(before.resolver, { dev: 'eth1', gateway: '10.1.0.1' })
  t.same(routeTo(ns, LAN_HOST), before.lan, `the LAN host ${LAN_HOST} is still reached via 10.1.0.254`)
  t.same(before.lan, { dev: 'eth1', gateway: '10.1.0.254' })
}

t.test('a node with the default formnet range leaves a 10.x host alone', { skip }, async (t) => {
  const lab = new FormnetLab(t)
  const { node, error, before, ns } = await startWatched(lab, [])
  if (!node) throw error
  const status = await lab.status(node)
  t.ok(status.enabled, 'formnet runs')
  t.match(status.subnet, /^198\.(18|19)\.\d+\.0\/24$/, `the node claimed ${status.subnet} in the default 198.18.0.0/15`)
  t.same(lab.addresses(ns(), node.interface), [`${status.address}/32`], 'the formnet interface holds only the node\'s /32')
  t.same(lab.routes(ns(), node.interface), [], 'a node without peers routes nothing to formnet')
  unchanged(t, lab, ns(), node.interface, before)
})

t.test('a node whose formnet range overlaps the host\'s networks claims the one free subnet', { skip }, async (t) => {
  const lab = new FormnetLab(t)
  // 10.1.0.0/24 is eth1's, 10.1.1.0/24 holds the resolver, 10.1.2.0/24 is a LAN route: only 10.1.3.0/24 is free
  const { node, error, before, ns } = await startWatched(lab, ['formnet_cidr = "10.1.0.0/22"'])
  if (!node) throw error
  const status = await lab.status(node)
  t.equal(status.subnet, '10.1.3.0/24', 'the node claimed the subnet that overlaps nothing of the host\'s')
  t.same(lab.addresses(ns(), node.interface), ['10.1.3.1/32'])
  unchanged(t, lab, ns(), node.interface, before)
})

t.test('a node refuses a formnet range with no free subnet, naming the conflicts and the setting', { skip }, async (t) => {
  const lab = new FormnetLab(t)
  const { node, error, before, ns } = await startWatched(lab, ['formnet_cidr = "10.1.0.0/23"'])
  t.notOk(node, 'the node did not start')
  t.match(error?.message, /formnet 10\.1\.0\.0\/23 overlaps networks this host already uses/)
  t.match(error?.message, /address 10\.1\.0\.2\/24 on eth1/, 'names the address and its interface')
  t.match(error?.message, /resolver 10\.1\.1\.53 \(\/etc\/resolv\.conf\)/, 'names the resolver and where it was read')
  t.match(error?.message, /hint: formnet would capture that traffic\. Set \[net\] formnet_cidr/, 'names the setting to change')
  t.notMatch(error?.message, /10\.1\.2\.0\/24/, 'a LAN route outside the range is no conflict')
  const formnet = lab.net.name('fw1')
  t.not(spawnSync('ip', ['-n', ns(), 'link', 'show', formnet]).status, 0, 'no formnet interface was created')
  unchanged(t, lab, ns(), formnet, before)
})

t.test('a peer subnet over a host route is not routed to formnet; the others are', { skip }, async (t) => {
  const lab = new FormnetLab(t)
  const n1 = await lab.addNode()
  const s1 = await lab.status(n1)
  const gateway = `${lab.lan}.250`
  // node 2's host already routes node 1's subnet elsewhere (a VPN, a LAN): formnet must not take it
  const n2 = await lab.addNode({ beforeStart: async (_env, ns) => void lab.net.run(['ip', '-n', ns, 'route', 'add', s1.subnet, 'via', gateway, 'dev', 'eth0']) })
  const n3 = await lab.addNode()
  const [s2, s3] = [await lab.status(n2), await lab.status(n3)]
  t.ok(await lab.until(async () => (await lab.status(n2)).skippedRoutes.some((r) => r.route === s1.subnet)), 'node 2 reports node 1\'s subnet as not routed')
  const skipped = (await lab.status(n2)).skippedRoutes.find((r) => r.route === s1.subnet)
  t.match(skipped?.conflicts, [`route ${s1.subnet} via ${gateway} dev eth0`], 'and names the host route in the way')
  t.ok(await lab.until(() => lab.routes(n2.ns, n2.interface).map((r) => r.dst).join() === s3.subnet), 'node 2 routes node 3\'s subnet, and only that')
  t.same(routeTo(n2.ns, s1.address), { dev: 'eth0', gateway }, 'node 2\'s host still sends node 1\'s range where it did')
  t.ok(await lab.ping(n2.ns, s3.address), 'node 2 reaches node 3 over formnet')
  t.ok(await lab.until(() => lab.routes(n1.ns, n1.interface).map((r) => r.dst).sort().join() === [s2.subnet, s3.subnet].sort().join()), 'node 1 routes both peers\' subnets')
  t.ok(await lab.ping(n1.ns, s3.address), 'node 1 reaches node 3 over formnet')
})

t.test('a node that holds a subnet of another range refuses to start rather than hold two', { skip }, async (t) => {
  const lab = new FormnetLab(t)
  // a network started under the old default, 10.0.0.0/8
  const node = await lab.addNode({ config: { net: ['formnet_cidr = "10.0.0.0/8"'] } })
  const old = (await lab.status(node)).subnet
  t.match(old, /^10\.\d+\.\d+\.0\/24$/)
  await node.proc.stop()
  // the operator upgrades and drops the setting: the default range no longer holds the node's subnet
  const { readFile, writeFile } = await import('node:fs/promises')
  const file = String(node.env.env.FORM_OPERATOR_CONFIG)
  await writeFile(file, (await readFile(file, 'utf8')).replace('formnet_cidr = "10.0.0.0/8"\n', ''))
  await t.rejects(lab.restart(node), new RegExp(`this node holds formnet subnet ${old.replace(/\./g, '\\.')}, not a /24 of \\[net\\] formnet_cidr 198\\.18\\.0\\.0/15[\\s\\S]*use 10\\.0\\.0\\.0/8`))
  t.not(spawnSync('ip', ['-n', node.ns, 'link', 'show', node.interface]).status, 0, 'no formnet interface was created')
  // set back, the node runs on its old subnet
  await writeFile(file, (await readFile(file, 'utf8')).replace('[net]\n', '[net]\nformnet_cidr = "10.0.0.0/8"\n'))
  await lab.restart(node)
  t.equal((await lab.status(node)).subnet, old, 'with the range set back it keeps its subnet')
})
