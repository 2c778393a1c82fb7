import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { createClient } from '../../core/client.js'
import { admit, form, joinEnv, makeEnv, startNode, until, type FormEnv, type NodeProcess, type Result } from './form.js'
import { NetnsLab } from './netns.js'

/**
 * Formation nodes and developers, each in its own network namespace, on one bridged LAN
 * (192.168.x.0/24, outside formnet's default 198.18.0.0/15). Everything is removed by the test's teardown.
 */

export interface LabNode {
  ns: string
  env: FormEnv
  proc: NodeProcess
  /** LAN address */
  ip: string
  /** its formnet (WireGuard) interface */
  interface: string
  multiaddr?: string
}

export interface LabDeveloper {
  ns: string
  env: FormEnv
  ip: string
  interface: string
}

interface Scope {
  testdir(): string
  teardown(fn: () => unknown): void
}

export interface NetStatus {
  enabled: boolean
  address: string
  subnet: string
  publicKey: string
  peers: { kind?: string; name?: string; publicKey: string; allowedIps: string[]; lastHandshake: number }[]
  routes: string[]
  skippedRoutes: { route: string; conflicts: string[] }[]
}

export class FormnetLab {
  readonly net: NetnsLab
  readonly hub: { ns: string; bridge: string }
  readonly lan = `192.168.${randomInt(100, 250)}`
  readonly nodes: LabNode[] = []
  private hosts = 0

  constructor(private readonly t: Scope) {
    this.net = new NetnsLab(t)
    this.hub = this.net.hub('fh')
  }

  /**
   * Starts a node in a new namespace; every node after the first bootstraps from the first.
   * `config` adds lines to sections of its operator config (e.g. `{ node: ['hypervisor = "qemu"'] }`);
   * `beforeStart` prepares its directories (e.g. a cached builder base) or its namespace; a loaded
   * machine may need more than `startTimeoutMs` (60 s) for a node to answer.
   */
  async addNode(options: { config?: Record<string, string[]>; beforeStart?: (env: FormEnv, ns: string) => Promise<void>; startTimeoutMs?: number } = {}): Promise<LabNode> {
    const i = ++this.hosts
    const ns = this.net.namespace(`fn${i}`)
    const ip = `${this.lan}.${i}`
    this.net.plug(ns, this.hub, `${ip}/24`)
    const boot = this.nodes[0]?.multiaddr
    // the first node is the network's genesis admin; the others join it and it admits them
    const first = this.nodes[0]
    const env = await makeEnv(this.t, {
      FORM_FORMNET: 'on',
      FORM_LISTEN: `/ip4/${ip}/tcp/3010`,
      FORM_API_LISTEN: `${ip}:3004`,
      ...(boot ? { FORM_BOOTSTRAP: boot } : {}),
      ...(first ? await joinEnv(first.env) : {}),
    })
    await this.writeOperatorConfig(env, i, ip, options.config ?? {})
    await options.beforeStart?.(env, ns)
    const node: LabNode = { ns, env, ip, interface: this.net.name(`fw${i}`), proc: await startNode(env, [], options.startTimeoutMs ?? 60_000, ns) }
    this.t.teardown(() => node.proc.stop())
    node.multiaddr = (await createClient({ socket: env.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs.find((m) => m.includes(ip))
    if (first) await admit(first.env, env)
    this.nodes.push(node)
    return node
  }

  private async writeOperatorConfig(env: FormEnv, i: number, ip: string, extra: Record<string, string[]>): Promise<void> {
    const { writeFile } = await import('node:fs/promises')
    const file = `${env.dir}/operator.toml`
    const sections: Record<string, string[]> = {
      state: ['heartbeat_interval_ms = 2000'],
      net: [`formnet_interface = "${this.net.name(`fw${i}`)}"`, `formnet_endpoint = "${ip}:51820"`, 'formnet_reconcile_interval_ms = 2000', 'discovery_interval_ms = 2000'],
    }
    for (const [name, lines] of Object.entries(extra)) sections[name] = [...(sections[name] ?? []), ...lines]
    await writeFile(file, Object.entries(sections).map(([name, lines]) => [`[${name}]`, ...lines].join('\n')).join('\n') + '\n')
    env.env.FORM_OPERATOR_CONFIG = file
  }

  /** Stops a node (SIGTERM) and starts it again on the same directories. */
  async restart(node: LabNode): Promise<void> {
    await node.proc.stop()
    node.proc = await startNode(node.env, [], 60_000, node.ns)
    this.t.teardown(() => node.proc.stop())
  }

  async addDeveloper(admittedBy: LabNode): Promise<LabDeveloper> {
    const i = ++this.hosts
    const ns = this.net.namespace(`fd${i}`)
    const ip = `${this.lan}.${i}`
    this.net.plug(ns, this.hub, `${ip}/24`)
    const env = await makeEnv(this.t, { FORM_PASSWORD: 'correct horse battery staple' })
    const dev: LabDeveloper = { ns, env, ip, interface: this.net.name(`fd${i}`) }
    // formnet-up --detach leaves a process in the namespace; the lab kills what is left in its namespaces
    this.t.teardown(() => this.form(dev, ['manage', 'formnet-down']))
    this.ok(await this.form(dev, ['kit', 'init', '--yes', '--host', `http://${admittedBy.ip}:3004`]))
    return dev
  }

  form(who: { ns: string; env: FormEnv }, args: string[]): Promise<Result> {
    return form(who.env, args, { netns: who.ns, timeoutMs: 60_000 })
  }

  ok(r: Result): Result {
    if (r.code !== 0) throw new Error(`form exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    return r
  }

  /**
   * The namespace's DNS resolvers: `ip netns exec` mounts /etc/netns/<ns>/resolv.conf over
   * /etc/resolv.conf for what it runs, so a node started afterwards reads these.
   */
  async resolvers(ns: string, servers: string[]): Promise<void> {
    const { mkdir, rm, writeFile } = await import('node:fs/promises')
    const dir = `/etc/netns/${ns}`
    this.t.teardown(() => rm(dir, { recursive: true, force: true }))
    await mkdir(dir, { recursive: true })
    await writeFile(`${dir}/resolv.conf`, servers.map((s) => `nameserver ${s}\n`).join(''))
  }

  /** IPv4 routes of a namespace (`ip -j route`), optionally of one device; host routes in CIDR form. */
  routes(ns: string, dev?: string): { dst: string; dev?: string; gateway?: string }[] {
    const out = spawnSync('ip', ['-n', ns, '-j', '-4', 'route', 'show', ...(dev ? ['dev', dev] : [])], { encoding: 'utf8' }).stdout
    return (JSON.parse(out || '[]') as { dst: string; dev?: string; gateway?: string }[]).map((r) => ({ ...r, dst: r.dst.includes('/') || r.dst === 'default' ? r.dst : `${r.dst}/32`, ...(dev ? { dev } : {}) }))
  }

  /** The addresses (CIDR) on a namespace's interface. */
  addresses(ns: string, dev: string): string[] {
    const out = spawnSync('ip', ['-n', ns, '-j', '-4', 'addr', 'show', 'dev', dev], { encoding: 'utf8' }).stdout
    return (JSON.parse(out || '[]') as { addr_info: { local: string; prefixlen: number }[] }[]).flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`))
  }

  status(node: LabNode): Promise<NetStatus> {
    return createClient({ socket: node.env.socket }).get<NetStatus>('/v1/net/status')
  }

  /** One ping from a namespace; true when it was answered. */
  pingOnce(ns: string, address: string): boolean {
    return spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', address]).status === 0
  }

  /** Pings until answered; the milliseconds it took, or undefined when `timeoutMs` passed. */
  async ping(ns: string, address: string, timeoutMs = 30_000): Promise<number | undefined> {
    const t0 = performance.now()
    while (performance.now() - t0 < timeoutMs) {
      if (this.pingOnce(ns, address)) return performance.now() - t0
      await new Promise((r) => setTimeout(r, 200))
    }
    return undefined
  }

  /** Waits until `check` holds, polling; false when `timeoutMs` passed. */
  async until(check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<boolean> {
    return until('a condition', async () => ((await check()) ? true : undefined), timeoutMs).then(
      () => true,
      () => false,
    )
  }
}
