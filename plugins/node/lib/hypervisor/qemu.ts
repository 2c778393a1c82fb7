import type { ChildProcess } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { readPid } from '../../../../core/daemon/socket.js'
import { FormError } from '../../../../core/errors.js'
import { checkSpec, exitOf, isLiveProcessWith, sleep, spawnDetached, tailOf } from './process.js'
import { QmpClient } from './qmp.js'
import type { Accel, BackendInfo, Hypervisor, ShutdownOutcome, Vm, VmSpec, VmStatus } from './types.js'

export const qmpSocket = (spec: VmSpec) => join(spec.runDir, `${spec.name}.qmp`)
export const pidFileOf = (spec: VmSpec) => join(spec.runDir, `${spec.name}.pid`)
/** In every VM's arguments: how a restarted node recognizes its VMs among the host's processes. */
export const processTag = (spec: VmSpec) => `form-${spec.name}`

/**
 * QEMU's arguments for a spec. q35 with virtio-pci devices, because a generic distribution kernel
 * and initrd (what images carry) find their disk and network there without extra modules or
 * command-line keys; microvm needs virtio-mmio and, under TCG, hangs at random on TSC calibration.
 * Exported so the benchmark launches exactly what the node launches.
 */
export function qemuArgs(spec: VmSpec, accel: Accel): string[] {
  const args = [
    '-name', `guest=${processTag(spec)}`,
    '-machine', `q35,accel=${accel}`,
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-smp', String(spec.vcpus),
    '-m', String(spec.memoryMb),
    '-nodefaults', '-no-user-config', '-display', 'none',
    // a guest that reboots or panics (panic=-1) ends the process: the controller sees it and says so
    '-no-reboot',
    '-kernel', spec.kernel,
    ...(spec.initrd ? ['-initrd', spec.initrd] : []),
    '-append', spec.cmdline,
    '-chardev', `file,id=console,path=${spec.consoleLog},append=on`,
    '-serial', 'chardev:console',
    '-drive', `file=${spec.disk},format=raw,if=none,id=disk0,discard=unmap`,
    '-device', 'virtio-blk-pci,drive=disk0',
    '-netdev', `tap,id=net0,ifname=${spec.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=net0,mac=${spec.mac}`,
    // guests generate keys at first boot (sshd, systemd); without a source of entropy they stall
    '-device', 'virtio-rng-pci',
    '-qmp', `unix:${qmpSocket(spec)},server=on,wait=off`,
    '-pidfile', pidFileOf(spec),
  ]
  return args
}

const POWER_BUTTON_REPEAT_MS = 5000

class QemuVm implements Vm {
  readonly exited: Promise<void>
  private gone = false

  constructor(
    readonly pid: number,
    private readonly qmp: QmpClient,
    child: ChildProcess | undefined,
  ) {
    this.exited = exitOf(pid, child, qmp.closed)
    void this.exited.then(() => {
      this.gone = true
      qmp.close()
    })
  }

  async info(): Promise<VmStatus> {
    if (this.gone) return { alive: false }
    try {
      const s = await this.qmp.execute<{ status: string }>('query-status')
      return { alive: true, pid: this.pid, status: s.status }
    } catch {
      return { alive: !this.gone, pid: this.pid }
    }
  }

  async shutdown(timeoutMs: number): Promise<ShutdownOutcome> {
    if (this.gone) return 'not-running'
    const within = (ms: number) => Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)])
    // pressed again every few seconds: a press that comes before the guest listens for it is lost
    const deadline = Date.now() + timeoutMs
    for (;;) {
      await this.qmp.execute('system_powerdown', undefined, 5000).catch(() => {})
      if (await within(Math.min(POWER_BUTTON_REPEAT_MS, deadline - Date.now()))) return 'powered-off'
      if (Date.now() >= deadline) break
    }
    // the guest ignored the power button (still booting, or no ACPI handling): stop QEMU itself
    await this.qmp.execute('quit', undefined, 3000).catch(() => {})
    if (await within(3000)) return 'quit'
    try {
      process.kill(this.pid, 'SIGKILL')
    } catch {
      // gone in the meantime
    }
    await this.exited
    return 'killed'
  }

}

export class QemuHypervisor implements Hypervisor {
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
    const child = await spawnDetached(this.info.binary, qemuArgs(spec, this.info.accel), spec.processLog)
    let exited = false
    child.once('exit', () => (exited = true))
    let qmp: QmpClient
    try {
      qmp = await QmpClient.connect(qmpSocket(spec), { timeoutMs: 30_000, gone: () => exited })
    } catch (error) {
      if (!exited) child.kill('SIGKILL')
      const output = (await tailOf(spec.processLog, 2000)).trim()
      throw new FormError('VMM_BOOT_FAILED', `QEMU did not start: ${output.split('\n').slice(-3).join(' | ') || (error as Error).message}`, {
        hint: `see ${spec.processLog}`,
        cause: error,
      })
    }
    return new QemuVm(child.pid!, qmp, child)
  }

  async adopt(spec: VmSpec): Promise<Vm | undefined> {
    const pid = await readPid(pidFileOf(spec))
    if (pid === undefined || !(await isLiveProcessWith(pid, [processTag(spec), qmpSocket(spec)]))) return undefined
    const qmp = await QmpClient.connect(qmpSocket(spec), { timeoutMs: 5000 })
    return new QemuVm(pid, qmp, undefined)
  }

  async cleanup(spec: VmSpec): Promise<void> {
    await rm(qmpSocket(spec), { force: true })
    await rm(pidFileOf(spec), { force: true })
  }
}
