import { spawnSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { createClient } from '../../core/client.js'
import { admit, form, joinEnv, makeEnv, startNode, until, type FormEnv, type NodeProcess, type Result } from './form.js'
import { NetnsLab } from './netns.js'

/**
 * Formation nodes and developers, each in its own network namespace, on one bridged LAN
 * (192.168.x.0/24, outside formnet's 10.0.0.0/8). Everything is removed by the test's teardown.
 */

export interface LabNode {
  ns: string
  env: FormEnv
  proc: NodeProcess
  /** LAN address */
  ip: string
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
   * `beforeStart` prepares its directories (e.g. a cached builder base).
   */
  async addNode(options: { config?: Record<string, string[]>; beforeStart?: (env: FormEnv) => Promise<void> } = {}): Promise<LabNode> {
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
    await options.beforeStart?.(env)
    const node: LabNode = { ns, env, ip, proc: await startNode(env, [], 60_000, ns) }
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
