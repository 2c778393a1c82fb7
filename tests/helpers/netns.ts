import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { randomBytes } from 'node:crypto'

/** Why network-namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(tools: string[] = []): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root'
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing'
  for (const tool of ['ip', ...tools]) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`
  return undefined
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * Namespaces, links and processes a test creates, removed by t.teardown (and on process exit) even
 * when the test fails. Names carry a random suffix: interface names are host-wide for WireGuard's
 * UAPI sockets, and must stay within 15 characters.
 */
export class NetnsLab {
  readonly id = randomBytes(3).toString('hex')
  private readonly namespaces: string[] = []
  private links = 0
  private readonly processes: ChildProcess[] = []
  private readonly sockets: string[] = []
  private readonly cleanupOnExit = () => this.cleanup()

  constructor(t: Teardown) {
    t.teardown(() => this.cleanup())
    process.once('exit', this.cleanupOnExit)
  }

  name(prefix: string): string {
    return `${prefix}${this.id}`.slice(0, 15)
  }

  run(args: string[]): string {
    const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr || r.stdout}`)
    return r.stdout
  }

  namespace(prefix: string): string {
    const ns = this.name(prefix)
    this.run(['ip', 'netns', 'add', ns])
    this.namespaces.push(ns)
    this.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    return ns
  }

  /** Starts a long-running process inside a namespace. */
  spawnIn(ns: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.processes.push(child)
    return child
  }

  /**
   * A namespace holding a bridge that other namespaces plug into with veth pairs: one L2 segment,
   * like machines on a LAN.
   */
  hub(prefix: string): { ns: string; bridge: string } {
    const ns = this.namespace(prefix)
    const bridge = 'br0'
    this.run(['ip', '-n', ns, 'link', 'add', bridge, 'type', 'bridge'])
    this.run(['ip', '-n', ns, 'link', 'set', bridge, 'up'])
    return { ns, bridge }
  }

  /** Connects a namespace to a hub with a veth pair; `cidr` is the namespace side's address. */
  plug(ns: string, hub: { ns: string; bridge: string }, cidr: string, ifname = 'eth0'): void {
    const outer = this.name(`v${this.links++}`)
    this.run(['ip', 'link', 'add', outer, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns])
    this.run(['ip', 'link', 'set', outer, 'netns', hub.ns])
    this.run(['ip', '-n', hub.ns, 'link', 'set', outer, 'master', hub.bridge, 'up'])
    this.run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', ifname])
    this.run(['ip', '-n', ns, 'link', 'set', ifname, 'up'])
  }

  /** A UAPI socket to delete if the process that owns it does not. */
  ownSocket(path: string): void {
    this.sockets.push(path)
  }

  /** SIGKILLs every process in a namespace (a node, its VMs, its wireguard-go): a machine that dies. */
  killAll(ns: string): number {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // already gone
      }
    }
    return pids.length
  }

  cleanup(): void {
    for (const p of this.processes) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    // deleting a namespace does not end its processes (nodes, wireguard-go, detached helpers)
    for (const ns of this.namespaces) this.killAll(ns)
    for (const ns of this.namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns])
    for (const s of this.sockets.splice(0)) rmSync(s, { force: true })
    process.off('exit', this.cleanupOnExit)
  }
}
