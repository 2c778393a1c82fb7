import { createHash, randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { readFile } from 'node:fs/promises'
import { FormError } from '../../../../core/errors.js'
import { nameserversIn, parseIpv4Cidr, PRIVATE_IPV4_RANGES } from '../../../../core/patterns.js'

/**
 * The build VM's network. QEMU's user-mode stack (slirp) gives the guest outbound TCP/UDP and a
 * DNS proxy without bridges or DHCP; slirp opens its sockets from QEMU's own network stack, so
 * QEMU runs in a network namespace of its own whose only way out is a veth to the host, NATed
 * there, and whose OUTPUT chain refuses the node's own addresses (its API and P2P ports, formnet)
 * and every private, link-local, shared (CGNAT) and loopback range, except the resolver's DNS port
 * and the ranges the operator allows ([pack] build_allow_cidrs).
 */

/** Ranges a build never reaches unless the operator allows them. */
export const BLOCKED_RANGES = ['0.0.0.0/8', ...PRIVATE_IPV4_RANGES, '224.0.0.0/3']

export interface BuildNetwork {
  /** QEMU's -netdev */
  netdev?: string
  /** the command prefix that runs QEMU in the namespace */
  wrap?: string[]
  /** what the agent configures in the guest */
  guest?: { ip: string; gw: string; dns: string }
  close(): Promise<void>
}

const TAG = 'form-build'

async function sh(cmd: string, args: string[], what: string): Promise<string> {
  const { execa } = await import('execa')
  const r = await execa(cmd, args, { reject: false, all: true })
  if (r.exitCode !== 0) {
    throw new FormError('BUILD_NET_FAILED', `${what}: ${(r.all ?? '').trim().slice(-300) || `exit ${r.exitCode}`}`, {
      hint: 'the builder needs root, iproute2 and iptables to confine its build VMs',
      details: { command: [cmd, ...args].join(' ') },
    })
  }
  return r.stdout as string
}

/** The IPv4 nameservers the host (and so slirp's DNS proxy) uses. */
async function resolvers(): Promise<string[]> {
  const text = await readFile('/etc/resolv.conf', 'utf8').catch(() => '')
  return nameserversIn(text)
}

/** Every IPv4 address of the host: the node's API and P2P ports listen on them. */
async function hostAddresses(): Promise<string[]> {
  const out = await sh('ip', ['-j', '-4', 'addr', 'show'], 'listing the host addresses')
  const links = JSON.parse(out) as { addr_info?: { local?: string }[] }[]
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local).filter((a): a is string => Boolean(a)))
}

/** The operator's allowed ranges, checked: a bad one is a config error naming it. */
export function checkCidrs(cidrs: string[]): string[] {
  for (const c of cidrs) {
    if (!parseIpv4Cidr(c)) {
      throw new FormError('CONFIG_BAD_CIDR', `[pack] build_allow_cidrs holds "${c}", which is not an IPv4 range`, { hint: 'write ranges as a.b.c.d/n, e.g. "10.20.0.0/16"' })
    }
  }
  return cidrs
}

/** Names a node's build namespaces apart from other nodes' on the same host: a hash of its work directory. */
const nodeTag = (workRoot: string) => createHash('sha256').update(workRoot).digest('hex').slice(0, 8)

export async function buildNetwork(o: { workDir: string; allowCidrs: string[] }): Promise<BuildNetwork> {
  const allow = checkCidrs(o.allowCidrs)
  const id = randomBytes(3).toString('hex')
  const ns = `form-build-${nodeTag(dirname(o.workDir))}-${id}`
  const hostIf = `fb${id}h`
  const nsIf = `fb${id}n`
  // a /30 in 10/8 for the veth: blocked for the guest like the rest of 10/8
  const a = randomBytes(2)
  const prefix = `10.213.${a[0]}.${a[1] & 0xfc}`
  const [p0, p1, p2, p3] = prefix.split('.').map(Number)
  const hostIp = `${p0}.${p1}.${p2}.${p3 + 1}`
  const nsIp = `${p0}.${p1}.${p2}.${p3 + 2}`
  const comment = ['-m', 'comment', '--comment', `${TAG}-${ns}`]
  const hostRules: string[][] = [
    ['-t', 'nat', 'POSTROUTING', '-s', `${nsIp}/32`, '-j', 'MASQUERADE', ...comment],
    ['-t', 'filter', 'FORWARD', '-s', `${nsIp}/32`, '-j', 'ACCEPT', ...comment],
    ['-t', 'filter', 'FORWARD', '-d', `${nsIp}/32`, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT', ...comment],
  ]
  const added: string[][] = []
  let nsMade = false
  const close = async () => {
    for (const r of added.reverse()) await sh('iptables', ['-t', r[1], '-D', ...r.slice(2)], 'removing a build network rule').catch(() => {})
    if (nsMade) await sh('ip', ['netns', 'del', ns], 'removing the build namespace').catch(() => {})
  }
  try {
    await sh('ip', ['netns', 'add', ns], 'creating the build namespace')
    nsMade = true
    await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns], 'creating the build veth')
    await sh('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf], 'addressing the build veth')
    await sh('ip', ['link', 'set', hostIf, 'up'], 'bringing up the build veth')
    const inNs = (args: string[], what: string) => sh('ip', ['netns', 'exec', ns, ...args], what)
    await inNs(['ip', 'link', 'set', 'lo', 'up'], 'bringing up the namespace loopback')
    await inNs(['ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf], 'addressing the namespace veth')
    await inNs(['ip', 'link', 'set', nsIf, 'up'], 'bringing up the namespace veth')
    await inNs(['ip', 'route', 'add', 'default', 'via', hostIp], 'routing the namespace')
    // what leaves the namespace: the operator's ranges, the resolver's DNS port, then nothing of
    // the node and nothing private; the rest of the internet
    const out = (args: string[]) => inNs(['iptables', '-A', 'OUTPUT', ...args], 'confining the build namespace')
    await out(['-o', 'lo', '-j', 'ACCEPT'])
    for (const c of allow) await out(['-d', c, '-j', 'ACCEPT'])
    for (const r of await resolvers()) {
      for (const proto of ['udp', 'tcp']) await out(['-d', `${r}/32`, '-p', proto, '--dport', '53', '-j', 'ACCEPT'])
    }
    for (const addr of new Set([...(await hostAddresses()), hostIp])) await out(['-d', `${addr}/32`, '-j', 'REJECT'])
    // refused at once (a reset, an ICMP error), so a step that tries fails fast instead of timing out
    for (const range of BLOCKED_RANGES) {
      await out(['-d', range, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'])
      await out(['-d', range, '-j', 'REJECT'])
    }
    await sh('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], 'enabling forwarding for the build network')
    for (const r of hostRules) {
      await sh('iptables', ['-t', r[1], '-I', ...r.slice(2)], 'NATing the build namespace')
      added.push(r)
    }
  } catch (error) {
    await close()
    throw error
  }
  return {
    netdev: 'user,id=n0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off',
    wrap: ['ip', 'netns', 'exec', ns],
    guest: { ip: '10.0.2.15/24', gw: '10.0.2.2', dns: '10.0.2.3' },
    close,
  }
}

/**
 * Removes the namespaces and host rules of build networks this node's earlier run left behind (a
 * crash): those of its work directory `workRoot` only, never another node's on the same host.
 */
export async function removeStaleBuildNetworks(workRoot: string): Promise<void> {
  const { execa } = await import('execa')
  const prefix = `form-build-${nodeTag(workRoot)}-`
  const names = ((await execa('ip', ['netns', 'list'], { reject: false })).stdout as string).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(prefix))
  for (const table of ['nat', 'filter']) {
    const rules = ((await execa('iptables', ['-t', table, '-S'], { reject: false })).stdout as string).split('\n').filter((l) => l.includes(`${TAG}-${prefix}`))
    for (const r of rules) await execa('sh', ['-c', `iptables -t ${table} ${r.replace(/^-A /, '-D ')}`], { reject: false })
  }
  for (const n of names) await execa('ip', ['netns', 'del', n], { reject: false })
}
