import type { ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readPid } from '../../../../core/daemon/socket.js'
import { FormError } from '../../../../core/errors.js'
import { checkSpec, exitOf, isLiveProcessWith, sleep, spawnDetached, tailOf } from './process.js'
import type { BackendInfo, Hypervisor, ShutdownOutcome, Vm, VmSpec, VmStatus } from './types.js'

export const apiSocket = (spec: VmSpec) => join(spec.runDir, `${spec.name}.ch.sock`)
const pidFileOf = (spec: VmSpec) => join(spec.runDir, `${spec.name}.ch.pid`)

/** One call of Cloud Hypervisor's REST API on its Unix socket. */
export function chApi<T = unknown>(socket: string, method: 'GET' | 'PUT', path: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const req = request(
      { socketPath: socket, method, path: `/api/v1/${path}`, headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          if ((res.statusCode ?? 500) >= 300) {
            reject(new FormError('VMM_CH_API', `cloud-hypervisor refused ${path}: ${res.statusCode} ${text.trim().slice(0, 300)}`))
            return
          }
          try {
            resolve((text ? JSON.parse(text) : undefined) as T)
          } catch {
            resolve(text as T)
          }
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/** The vm.create body: the same machine the QEMU backend builds, in Cloud Hypervisor's terms. */
export function chVmConfig(spec: VmSpec): Record<string, unknown> {
  return {
    cpus: { boot_vcpus: spec.vcpus, max_vcpus: spec.vcpus },
    memory: { size: spec.memoryMb * 1024 * 1024 },
    payload: { kernel: spec.kernel, ...(spec.initrd ? { initramfs: spec.initrd } : {}), cmdline: spec.cmdline },
    disks: [{ path: spec.disk }],
    net: [{ tap: spec.tap, mac: spec.mac }],
    rng: { src: '/dev/urandom' },
    serial: { mode: 'File', file: spec.consoleLog },
    console: { mode: 'Off' },
  }
}

class ChVm implements Vm {
  readonly exited: Promise<void>
  private gone = false

  constructor(
    readonly pid: number,
    private readonly socket: string,
    child: ChildProcess | undefined,
  ) {
    this.exited = exitOf(pid, child)
    void this.exited.then(() => (this.gone = true))
  }

  async info(): Promise<VmStatus> {
    if (this.gone) return { alive: false }
    try {
      const info = await chApi<{ state?: string }>(this.socket, 'GET', 'vm.info')
      return { alive: true, pid: this.pid, status: info.state?.toLowerCase() }
    } catch {
      return { alive: !this.gone, pid: this.pid }
    }
  }

  async shutdown(timeoutMs: number): Promise<ShutdownOutcome> {
    if (this.gone) return 'not-running'
    const within = (ms: number) => Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)])
    // The guest powering off leaves the VMM process up; ending it is ours to do.
    const guestOff = async () => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline && !this.gone) {
        const s = await this.info()
        if (s.status === 'shutdown' || s.status === 'created') return true
        await sleep(250)
      }
      return this.gone
    }
    await chApi(this.socket, 'PUT', 'vm.power-button').catch(() => {})
    const graceful = await guestOff()
    await chApi(this.socket, 'PUT', 'vm.shutdown').catch(() => {})
    await chApi(this.socket, 'PUT', 'vm.delete').catch(() => {})
    await chApi(this.socket, 'PUT', 'vmm.shutdown').catch(() => {})
    if (await within(3000)) return graceful ? 'powered-off' : 'quit'
    try {
      process.kill(this.pid, 'SIGKILL')
    } catch {
      // already gone
    }
    await this.exited
    return 'killed'
  }

}

/**
 * Cloud Hypervisor, driven through its REST API: vmm.ping, vm.create, vm.boot, vm.info,
 * vm.power-button, then vm.shutdown, vm.delete and vmm.shutdown to end it. It needs KVM, so it
 * is chosen only where KVM is usable (see detect.ts), and it boots kernels through their PVH
 * entry (an ELF).
 */
export class CloudHypervisor implements Hypervisor {
  constructor(readonly info: BackendInfo) {}

  consoleLog(spec: VmSpec): string {
    return spec.consoleLog
  }

  create(spec: VmSpec): Promise<void> {
    return checkSpec(spec)
  }

  async boot(spec: VmSpec): Promise<Vm> {
    await this.create(spec)
    await this.cleanup(spec)
    const socket = apiSocket(spec)
    const child = await spawnDetached(this.info.binary, ['--api-socket', `path=${socket}`], spec.processLog)
    await writeFile(pidFileOf(spec), `${child.pid}\n`)
    let exited = false
    child.once('exit', () => (exited = true))
    try {
      const deadline = Date.now() + 10_000
      for (;;) {
        try {
          await chApi(socket, 'GET', 'vmm.ping', undefined, 1000)
          break
        } catch (error) {
          if (exited || Date.now() > deadline) throw error
          await sleep(50)
        }
      }
      await chApi(socket, 'PUT', 'vm.create', chVmConfig(spec))
      await chApi(socket, 'PUT', 'vm.boot')
    } catch (error) {
      if (!exited) child.kill('SIGKILL')
      const output = (await tailOf(spec.processLog, 2000)).trim()
      throw new FormError('VMM_BOOT_FAILED', `cloud-hypervisor did not boot the VM: ${(error as Error).message}${output ? ` | ${output.split('\n').slice(-2).join(' | ')}` : ''}`, {
        hint: `see ${spec.processLog}`,
        cause: error,
      })
    }
    return new ChVm(child.pid!, socket, child)
  }

  async adopt(spec: VmSpec): Promise<Vm | undefined> {
    const pid = await readPid(pidFileOf(spec))
    if (pid === undefined || !(await isLiveProcessWith(pid, [apiSocket(spec)]))) return undefined
    await chApi(apiSocket(spec), 'GET', 'vmm.ping', undefined, 3000)
    return new ChVm(pid, apiSocket(spec), undefined)
  }

  async cleanup(spec: VmSpec): Promise<void> {
    await rm(apiSocket(spec), { force: true })
    await rm(pidFileOf(spec), { force: true })
  }
}
