import { readFile, writeFile } from 'node:fs/promises'
import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import { PRIVATE_IPV4_RANGES } from '../../../../core/patterns.js'
import { addressesOf, ip, linkKind } from '../../../net/index.js'

/**
 * The node's instance network: one bridge holding the first address of the node's subnet (the
 * instances' gateway), one tap per instance plugged into it, and optionally NAT for traffic
 * leaving the subnet. Everything is created on first use (a node without instances touches no
 * interface) and removed when the instance or the node goes away. Links the node made carry the
 * alias below, so a restarted node knows them as its own and never deletes an operator's bridge.
 */

export const OWNED_ALIAS = 'form-vmm'

export interface NetworkConfig {
  bridge: string
  nat: boolean
  /** the formnet range: instances reach it (other nodes' instances, developers) without NAT */
  formnetCidr?: string
  /** destinations instances may reach besides the internet and formnet (`[node] instance_allow_cidrs`) */
  allowCidrs?: string[]
  /** the node's DNS port on the bridge address, the one service of the node instances may reach */
  dnsPort?: number
}

/**
 * Where an instance's traffic must not go unless the operator allows it: the private, shared,
 * link-local (cloud metadata at 169.254.169.254) and loopback ranges, where the operator's own
 * machines live.
 */
export const PRIVATE_RANGES = PRIVATE_IPV4_RANGES

export interface Subnet {
  /** the bridge's address (the instances' gateway) */
  gateway: string
  prefix: number
  /** the subnet in CIDR form, for NAT */
  cidr: string
}

interface LinkInfo {
  ifname: string
  ifalias?: string
  master?: string
  operstate?: string
  linkinfo?: { info_kind?: string }
}

async function link(name: string): Promise<LinkInfo | undefined> {
  const out = await ip(['-d', '-j', 'link', 'show', 'dev', name], { allowFailure: true })
  try {
    return (JSON.parse(out || '[]') as LinkInfo[])[0]
  } catch {
    return undefined
  }
}

async function iptables(args: string[], allowFailure = false): Promise<boolean> {
  const { execa } = await import('execa')
  const r = await execa('iptables', ['-w', ...args], { reject: false, all: true })
  if (r.exitCode !== 0 && !allowFailure) {
    throw new FormError('VMM_NAT_FAILED', `iptables ${args.join(' ')} failed: ${(r.all ?? '').trim() || `exit ${r.exitCode}`}`, {
      hint: 'NAT needs iptables and root; or set [node] nat = false',
    })
  }
  return r.exitCode === 0
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward'

export class InstanceNetwork {
  private bridgeReady?: Promise<void>
  private forwardBefore?: string

  constructor(
    readonly config: NetworkConfig,
    private readonly log: Logger,
  ) {}

  /** Creates (or takes over) the bridge, addresses it, and installs NAT when configured. Idempotent. */
  ensureBridge(subnet: Subnet): Promise<void> {
    this.bridgeReady ??= this.setUpBridge(subnet).catch((error) => {
      this.bridgeReady = undefined
      throw error
    })
    return this.bridgeReady
  }

  private async setUpBridge(subnet: Subnet): Promise<void> {
    const { bridge } = this.config
    const { gateway, prefix } = subnet
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new FormError('VMM_NEEDS_ROOT', `creating the instance bridge ${bridge} needs root`, { hint: 'run the node as root (it manages bridges, taps and VMs)' })
    }
    let existing = await link(bridge)
    if (existing && existing.linkinfo?.info_kind !== 'bridge') {
      throw new FormError('VMM_BRIDGE_CLASH', `${bridge} exists and is not a bridge (it is a ${existing.linkinfo?.info_kind ?? 'plain'} link)`, { hint: 'choose another [net] bridge_name' })
    }
    if (!existing) {
      await ip(['link', 'add', bridge, 'type', 'bridge'])
      await ip(['link', 'set', 'dev', bridge, 'alias', OWNED_ALIAS])
      this.log.info('created the instance bridge', { bridge })
      existing = await link(bridge)
    }
    const cidr = `${gateway}/${prefix}`
    const current = await addressesOf(bridge)
    // our own bridge holds exactly the gateway address; an operator's keeps what it had
    if (existing?.ifalias === OWNED_ALIAS) for (const a of current) if (a !== cidr) await ip(['addr', 'del', a, 'dev', bridge])
    if (!current.includes(cidr)) await ip(['addr', 'add', cidr, 'dev', bridge])
    await ip(['link', 'set', 'dev', bridge, 'up'])
    // The node routes between formnet and its instances (and, with NAT, the outside).
    this.forwardBefore = (await readFile(IP_FORWARD, 'utf8').catch(() => undefined))?.trim()
    if (this.forwardBefore === '0') await writeFile(IP_FORWARD, '1')
    // Developers admitted here hold /32s of this same subnet but sit behind formnet: an instance
    // asks for them on the bridge (same subnet, so no gateway), and the node must answer for them.
    await writeFile(`/proc/sys/net/ipv4/conf/${bridge}/proxy_arp`, '1')
    await this.installRules(subnet.cidr)
  }

  private get comment(): string {
    return `${OWNED_ALIAS}:${this.config.bridge}`
  }

  /**
   * The instances' firewall, always: towards the node itself only DNS, ICMP and replies (never its
   * API or P2P ports); forwarded, formnet and the allowed ranges but no private range. With NAT
   * (the default) everything else goes out masqueraded. Rules carry our comment; those of an
   * earlier run are removed first, so the order below is the order in force.
   */
  private async installRules(subnet: string): Promise<void> {
    const { bridge, nat } = this.config
    const comment = ['-m', 'comment', '--comment', this.comment]
    const allow = [...(this.config.formnetCidr ? [this.config.formnetCidr] : []), subnet, ...(this.config.allowCidrs ?? [])]
    const port = String(this.config.dnsPort ?? 53)
    const input = [
      ['-i', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ['-i', bridge, '-p', 'udp', '--dport', port, '-j', 'ACCEPT'],
      ['-i', bridge, '-p', 'tcp', '--dport', port, '-j', 'ACCEPT'],
      ['-i', bridge, '-p', 'icmp', '-j', 'ACCEPT'],
      ...(this.config.allowCidrs ?? []).map((c) => ['-i', bridge, '-d', c, '-j', 'ACCEPT']),
      ['-i', bridge, '-j', 'DROP'],
    ]
    const forward = [
      ['-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
      ...allow.map((c) => ['-i', bridge, '-d', c, '-j', 'ACCEPT']),
      ...PRIVATE_RANGES.map((c) => ['-i', bridge, '-d', c, '-j', 'DROP']),
      ...(nat ? [['-i', bridge, '-j', 'ACCEPT']] : []),
    ]
    try {
      await this.removeRules()
      for (const [chain, rules] of [['INPUT', input], ['FORWARD', forward]] as const) {
        for (const [i, rule] of rules.entries()) await iptables(['-t', 'filter', '-I', chain, String(i + 1), ...rule, ...comment])
      }
      // formnet keeps the instances' own addresses: other nodes route them back through formnet
      const formnet = this.config.formnetCidr ? ['!', '-d', this.config.formnetCidr] : []
      if (nat) await iptables(['-t', 'nat', '-A', 'POSTROUTING', '-s', subnet, ...formnet, '!', '-o', bridge, '-j', 'MASQUERADE', ...comment])
    } catch (error) {
      if (nat) throw error
      // without NAT the node still runs instances; say plainly what is not guarded
      this.log.warn('could not install the instance firewall: instances can reach this node\'s services', { error: (error as Error).message })
      return
    }
    this.log.info(nat ? 'NAT enabled for the instances' : 'instances firewalled (NAT off)', { subnet, bridge, allow })
  }

  /** Deletes every rule carrying our comment (also those a killed node left behind). */
  private async removeRules(): Promise<void> {
    const { execa } = await import('execa')
    for (const table of ['nat', 'filter']) {
      const listed = await execa('iptables', ['-w', '-t', table, '-S'], { reject: false })
      for (const line of (listed.stdout ?? '').split('\n')) {
        // our comment has no spaces, so the listing splits back into arguments (iptables quotes comments)
        const words = line.trim().split(/\s+/).map((w) => w.replace(/^"(.*)"$/, '$1'))
        if (words[0] === '-A' && words.includes(this.comment)) await iptables(['-t', table, '-D', ...words.slice(1)], true)
      }
    }
  }

  /** The tap of an instance, plugged into the bridge and up. A tap a running VM holds is kept as it is. */
  async ensureTap(subnet: Subnet, tap: string, label: string): Promise<void> {
    await this.ensureBridge(subnet)
    const existing = await link(tap)
    if (existing && existing.linkinfo?.info_kind !== 'tun') {
      throw new FormError('VMM_TAP_CLASH', `${tap} exists and is not a tap device`, { hint: 'another program uses that interface name' })
    }
    if (!existing) {
      await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap'])
      await ip(['link', 'set', 'dev', tap, 'alias', `${OWNED_ALIAS}:${label}`.slice(0, 250)])
    }
    if (existing?.master !== this.config.bridge) await ip(['link', 'set', 'dev', tap, 'master', this.config.bridge])
    await ip(['link', 'set', 'dev', tap, 'up'])
  }

  async removeTap(tap: string): Promise<void> {
    if ((await linkKind(tap)) === 'tun') await ip(['link', 'del', 'dev', tap], { allowFailure: true })
  }

  async tapExists(tap: string): Promise<boolean> {
    return (await linkKind(tap)) !== undefined
  }

  /**
   * Removes the NAT rules and, when the node made it, the bridge: also those a killed node left
   * behind, found by their comment and alias.
   */
  async teardown(): Promise<void> {
    await this.removeRules().catch(() => {})
    this.bridgeReady = undefined
    const bridge = await link(this.config.bridge)
    if (bridge?.ifalias === OWNED_ALIAS) {
      await ip(['link', 'del', 'dev', this.config.bridge], { allowFailure: true })
      this.log.info('removed the instance bridge', { bridge: this.config.bridge })
    }
    if (this.forwardBefore === '0') await writeFile(IP_FORWARD, '0').catch(() => {})
  }
}
