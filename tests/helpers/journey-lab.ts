import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'
import { shareCachedBase } from './builder.js'
import { form, until, type Result } from './form.js'
import { FormnetLab, type LabDeveloper, type LabNode } from './formnet-lab.js'

/**
 * The developer journey's world: nodes in network namespaces that run VMs (three by default; node 1
 * also builds, with the machine's cached Debian base), and a developer namespace with a wallet, an
 * SSH key and a `hello-web` project. Used by the end-to-end test and by bench/ship.ts.
 */

export interface Replica {
  id: string
  node: string
  state: string
  ip: string | null
}

interface Scope {
  testdir(): string
  teardown(fn: () => unknown): void
}

export const SSH_OPTIONS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR']

export class JourneyLab {
  readonly lab: FormnetLab
  nodes: LabNode[] = []
  /** each node's account address (what records name), by node index */
  accounts: string[] = []
  /** each node's formnet address */
  addresses: string[] = []
  dev!: LabDeveloper
  key!: string
  app!: string

  constructor(t: Scope) {
    this.lab = new FormnetLab(t)
  }

  /**
   * `count` nodes that see each other in state. On a loaded machine a node can take minutes to
   * answer its first request: `startTimeoutMs` is given to each node's start and to the wait for
   * all of them to appear in state.
   */
  async startNodes(options: { count?: number; startTimeoutMs?: number } = {}): Promise<void> {
    const count = options.count ?? 3
    const startTimeoutMs = options.startTimeoutMs ?? 60_000
    const config = (i: number) => ({
      node: ['hypervisor = "auto"', 'nat = false', 'shutdown_timeout_s = 5', 'boot_timeout_s = 600'],
      'node.resources': ['vcpus = 2', 'memory_mb = 1536', 'disk_gb = 20'],
      net: [`bridge_name = "${this.lab.net.name(`fb${i}`)}"`],
    })
    this.nodes = []
    for (let i = 1; i <= count; i++) this.nodes.push(await this.lab.addNode({ config: config(i), startTimeoutMs, ...(i === 1 ? { beforeStart: shareCachedBase } : {}) }))
    this.addresses = await Promise.all(this.nodes.map(async (n) => (await this.lab.status(n)).address))
    this.accounts = await Promise.all(this.nodes.map(async (n) => (await createClient({ socket: n.env.socket }).get<{ address: string }>('/v1/state/info')).address))
    await until(`the ${count} nodes to see each other in state`, async () => {
      const r = await createClient({ socket: this.nodes[0].env.socket }).get<{ records: unknown[] }>('/v1/state/records/nodes')
      return r.records.length === count ? true : undefined
    }, startTimeoutMs)
  }

  /** The developer: wallet through node 1, formnet membership and interface, an SSH key. */
  async addDeveloper(): Promise<{ joined: { address: string } }> {
    this.dev = await this.lab.addDeveloper(this.nodes[0])
    const joined = JSON.parse(this.lab.ok(await this.lab.form(this.dev, ['manage', 'join', '--interface', this.dev.interface, '--json'])).stdout)
    this.lab.ok(await this.lab.form(this.dev, ['manage', 'formnet-up', '--detach', '--interval-ms', '1000']))
    this.key = join(this.dev.env.dir, 'id_ed25519')
    const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'dev@journey', '-f', this.key], { encoding: 'utf8' })
    if (keygen.status !== 0) throw new Error(`ssh-keygen failed: ${keygen.stderr}`)
    this.app = join(this.dev.env.dir, 'hello')
    return { joined }
  }

  /** `form ...` as the developer, in the project directory. */
  devForm(args: string[], timeoutMs = 60_000): Promise<Result> {
    return form(this.dev.env, args, { netns: this.dev.ns, cwd: this.app, timeoutMs })
  }

  /** A command in the developer's namespace. */
  sh(args: string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
    return spawnSync('ip', ['netns', 'exec', this.dev.ns, ...args], { encoding: 'utf8', timeout: timeoutMs })
  }

  async replicas(buildId: string): Promise<Replica[]> {
    return JSON.parse(this.lab.ok(await this.devForm(['manage', 'get-ip', '--build-id', buildId, '--json'])).stdout).replicas
  }

  /** Waits until SSH (as `dev`, with the key) answers on a replica; the command's result. */
  ssh(r: Replica, command: string, timeoutMs = 120_000): Promise<SpawnSyncReturns<string>> {
    return this.retry(`ssh to ${r.id} at ${r.ip}`, ['ssh', '-i', this.key, ...SSH_OPTIONS, `dev@${r.ip}`, command], (res) => res.status === 0, timeoutMs)
  }

  /** Waits until the replica's HTTP server answers on port 8080; curl's result. */
  http(r: Replica, timeoutMs = 120_000): Promise<SpawnSyncReturns<string>> {
    return this.retry(`HTTP from ${r.id}`, ['curl', '-sS', '--max-time', '5', `http://${r.ip}:8080/`], (res) => res.status === 0 && Boolean(res.stdout), timeoutMs)
  }

  /** Runs a command in the developer's namespace until `ok` holds; its last result (the failing one on timeout). */
  private retry(label: string, args: string[], ok: (res: SpawnSyncReturns<string>) => boolean, timeoutMs: number): Promise<SpawnSyncReturns<string>> {
    return until(label, async () => {
      const res = this.sh(args)
      return ok(res) ? res : undefined
    }, timeoutMs).catch(() => this.sh(args))
  }
}
