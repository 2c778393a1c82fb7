import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import { socketAnswers, terminate } from '../../../../core/daemon/socket.js'
import { ip, linkKind } from '../ip.js'
import { uapiGet, uapiSet, type DeviceChange, type DeviceState } from './uapi.js'
import { INTERFACE_NAME } from '../../../../core/patterns.js'

/**
 * A WireGuard interface: the kernel's when the module exists, else wireguard-go (userspace, needs
 * /dev/net/tun). Both are driven through the same get/set of the UAPI model.
 */
export interface WireGuardDevice {
  readonly name: string
  readonly driver: 'kernel' | 'userspace'
  get(): Promise<DeviceState>
  set(change: DeviceChange): Promise<void>
  close(): Promise<void>
}

export interface DeviceOptions {
  name: string
  driver: 'auto' | 'kernel' | 'userspace'
  /** records the wireguard-go pid, so the process of a node that was killed is found and stopped */
  pidFile: string
  log: Logger
  /** runs after the interface (re)appears: it has no key, address or peers then */
  onUp(device: WireGuardDevice): Promise<void>
  /** wireguard-go puts its UAPI sockets here; the directory is shared by every network namespace */
  socketDir?: string
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The state of an existing interface (userspace or kernel), or undefined when it is not there. */
export async function readDevice(name: string, socketDir = '/var/run/wireguard'): Promise<DeviceState | undefined> {
  const socket = `${socketDir}/${name}.sock`
  if (existsSync(socket)) return uapiGet(socket)
  if ((await linkKind(name)) !== 'wireguard') return undefined
  return kernelDevice(name).get()
}

/** Why this machine cannot run a WireGuard interface, or undefined when it can. */
export function wireguardUnavailable(): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'creating network interfaces needs root'
  return undefined
}

export async function openDevice(options: DeviceOptions): Promise<WireGuardDevice> {
  if (!INTERFACE_NAME.test(options.name)) {
    throw new FormError('FORMNET_BAD_INTERFACE', `"${options.name}" is not a valid interface name`, { hint: '1-15 letters, digits, . _ or -' })
  }
  const why = wireguardUnavailable()
  if (why) throw new FormError('FORMNET_UNAVAILABLE', `cannot create the WireGuard interface ${options.name}: ${why}`, { hint: 'run the node as root, or set [net] formnet = "off"' })
  if (options.driver !== 'userspace') {
    await ip(['link', 'add', options.name, 'type', 'wireguard'], { allowFailure: true })
    if ((await linkKind(options.name)) === 'wireguard') return openKernelDevice(options)
    if (options.driver === 'kernel') throw new FormError('FORMNET_NO_KERNEL_WIREGUARD', 'this kernel has no WireGuard module', { hint: 'set [net] formnet_driver = "auto" to use wireguard-go' })
  }
  const device = new UserspaceDevice(options)
  await device.start()
  return device
}

class UserspaceDevice implements WireGuardDevice {
  readonly driver = 'userspace' as const
  readonly name: string
  readonly socket: string
  private child?: ChildProcess
  private closing = false
  private failures = 0
  private restartTimer?: NodeJS.Timeout

  constructor(private readonly options: DeviceOptions) {
    this.name = options.name
    this.socket = `${options.socketDir ?? '/var/run/wireguard'}/${options.name}.sock`
  }

  get = () => uapiGet(this.socket)
  set = (change: DeviceChange) => uapiSet(this.socket, change)

  async start(): Promise<void> {
    await this.stopLeftover()
    if (existsSync(this.socket)) {
      if (await socketAnswers(this.socket)) {
        throw new FormError('FORMNET_INTERFACE_BUSY', `another WireGuard interface named ${this.name} is running (${this.socket})`, {
          hint: 'UAPI sockets are shared by every network namespace of the host: give this node its own [net] formnet_interface',
        })
      }
      await rm(this.socket, { force: true })
    }
    if (!existsSync('/dev/net/tun')) throw new FormError('FORMNET_NO_TUN', '/dev/net/tun is missing, so wireguard-go cannot create an interface', { hint: 'load the tun module (modprobe tun)' })
    let output = ''
    // -f keeps wireguard-go in the foreground so we own the process (it re-executes itself otherwise).
    // Its own process group: a terminal's Ctrl-C reaches a foreground node's whole group (`npm start`),
    // and wireguard-go would exit and be restarted while the node is stopping; close() ends it.
    const child = spawn('wireguard-go', ['-f', this.name], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    this.child = child
    child.stdout!.on('data', (d) => (output = (output + d).slice(-4000)))
    child.stderr!.on('data', (d) => (output = (output + d).slice(-4000)))
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined))
      child.once('error', resolve)
    })
    if (spawned) {
      throw new FormError('FORMNET_NO_WIREGUARD', `cannot run wireguard-go: ${spawned.message}`, { hint: 'install it (apt-get install wireguard-go), or load the kernel module' })
    }
    await mkdir(dirname(this.options.pidFile), { recursive: true })
    await writeFile(this.options.pidFile, `${child.pid}\n`)
    for (let i = 0; i < 200 && !existsSync(this.socket); i++) {
      if (child.exitCode !== null || child.signalCode !== null) break
      await sleep(25)
    }
    if (!existsSync(this.socket)) {
      child.kill('SIGKILL')
      throw new FormError('FORMNET_START', `wireguard-go did not create ${this.name}: ${output.trim() || 'no output'}`, { hint: 'check /dev/net/tun and that no other interface has that name' })
    }
    child.once('exit', (code, signal) => {
      if (this.closing) return
      this.failures++
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6))
      this.options.log.warn('wireguard-go exited; restarting it', { interface: this.name, code, signal, output: output.trim().slice(-500), inMs: delay })
      this.restartTimer = setTimeout(() => void this.restart(), delay)
    })
    await this.options.onUp(this)
    this.failures = 0
  }

  private async restart(): Promise<void> {
    if (this.closing) return
    try {
      await this.start()
      this.options.log.info('wireguard-go restarted and reconfigured', { interface: this.name })
    } catch (error) {
      this.options.log.error('could not restart wireguard-go', { interface: this.name, error: (error as Error).message })
      this.failures++
      this.restartTimer = setTimeout(() => void this.restart(), Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6)))
    }
  }

  /** A wireguard-go left running by a node that was killed: stop it, so the interface starts clean. */
  private async stopLeftover(): Promise<void> {
    const pid = Number((await readFile(this.options.pidFile, 'utf8').catch(() => '')).trim())
    if (!(pid > 0)) return
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (!cmdline.includes('wireguard-go') || !cmdline.includes(this.name)) return
    this.options.log.info('stopping the wireguard-go a previous run left behind', { pid })
    await terminate(pid, { timeoutMs: 3000, kill: true })
  }

  async close(): Promise<void> {
    this.closing = true
    clearTimeout(this.restartTimer)
    const child = this.child
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await Promise.race([exited, sleep(3000)])
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
    }
    await rm(this.options.pidFile, { force: true })
    await rm(this.socket, { force: true })
  }
}

/**
 * The kernel module's device. Node has no netlink, so it goes through wireguard-tools' `wg`, whose
 * `set` arguments and `show dump` (tab-separated, meant for scripts) map one to one onto the UAPI.
 * This machine has no WireGuard module, so only the userspace driver is exercised by the tests here.
 */
async function openKernelDevice(options: DeviceOptions): Promise<WireGuardDevice> {
  const device = kernelDevice(options.name)
  await options.onUp(device)
  return device
}

function kernelDevice(name: string): WireGuardDevice {
  const options = { name }
  const wg = async (args: string[], input?: string) => {
    const { execa } = await import('execa')
    const r = await execa('wg', args, { input, reject: false, all: true })
    if (r.exitCode !== 0) throw new FormError('WG_KERNEL_ERROR', `wg ${args[0]} ${options.name} failed: ${(r.all ?? '').trim().slice(0, 300)}`, { hint: 'install wireguard-tools' })
    return r.stdout
  }
  return {
    name: options.name,
    driver: 'kernel',
    async get() {
      const [head, ...rows] = (await wg(['show', options.name, 'dump'])).split('\n').filter(Boolean).map((l) => l.split('\t'))
      const b = (s: string) => (s === '(none)' ? undefined : s)
      return {
        privateKey: b(head[0]),
        listenPort: Number(head[2]),
        peers: rows.map((r) => ({
          publicKey: r[0],
          endpoint: b(r[2]),
          allowedIps: r[3] === '(none)' ? [] : r[3].split(','),
          lastHandshake: Number(r[4]),
          rxBytes: Number(r[5]),
          txBytes: Number(r[6]),
          persistentKeepalive: r[7] === 'off' ? 0 : Number(r[7]),
        })),
      }
    },
    async set(change) {
      const args = ['set', options.name]
      if (change.privateKey !== undefined) args.push('private-key', '/dev/stdin')
      if (change.listenPort !== undefined) args.push('listen-port', String(change.listenPort))
      for (const p of change.peers ?? []) {
        args.push('peer', p.publicKey)
        if (p.remove) args.push('remove')
        if (p.endpoint !== undefined) args.push('endpoint', p.endpoint)
        if (p.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(p.persistentKeepalive || 'off'))
        if (p.allowedIps !== undefined) args.push('allowed-ips', p.allowedIps.join(','))
      }
      await wg(args, change.privateKey)
    },
    async close() {
      await ip(['link', 'del', options.name], { allowFailure: true })
    },
  }
}
