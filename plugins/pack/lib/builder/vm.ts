import { spawn, type ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { kvmStatus, QmpClient } from '../../../node/index.js'

/**
 * A throwaway build VM: QEMU with the build's disks, the console (ttyS0) on a pipe for the build
 * log, and a control port (ttyS1, a unix socket) over which the agent inside and the builder
 * exchange one line at a time. The host only moves opaque bytes in and out of it.
 */

export interface BuildDisk {
  file: string
  format: 'raw' | 'qcow2'
  readonly?: boolean
}

export interface BuildVmSpec {
  kernel: string
  initrd: string
  cmdline: string
  /** vda, vdb, ... in this order */
  disks: BuildDisk[]
  memoryMb: number
  vcpus: number
  /** QEMU's -netdev, or undefined for no network */
  netdev?: string
  /** run QEMU through this prefix (e.g. `ip netns exec <ns>`) */
  wrap?: string[]
  binary?: string
  signal?: AbortSignal
  /** QEMU's pid file; with the argument `form-build`, how a restarted node finds a VM its crash left running */
  pidFile: string
}

export type Accel = 'kvm' | 'tcg'

let accelChoice: Promise<Accel> | undefined
/** KVM when it is usable here, else TCG (decided once per process). */
export function buildAccel(): Promise<Accel> {
  accelChoice ??= kvmStatus().then((k) => (k.usable ? 'kvm' : 'tcg'), () => 'tcg' as const)
  return accelChoice
}

/**
 * QEMU dies with the builder: a shell starts it and waits for it, while a reader of the shell's
 * stdin (a pipe from this process, never written; fd 3, since an asynchronous list's stdin is
 * /dev/null) kills it at end of file, which comes when the
 * builder closes the pipe (kill()) or dies (a crash, a SIGKILL of the node).
 */
const WATCH = 'exec 3<&0; "$@" </dev/null 3<&- & q=$!; (while read -r _; do :; done <&3; grep -qs form-build /proc/$q/cmdline && kill -9 $q) >/dev/null 2>&1 & exec 3<&-; wait $q'

export class BuildVm {
  private ctl!: Socket
  private ctlBuffer = ''
  private readonly lines: string[] = []
  private waiting: ((line: string | undefined) => void) | undefined
  private ended = false
  readonly exited: Promise<number | null>
  qmp!: QmpClient
  qemuOutput = ''
  private console?: Socket
  private onConsole: (text: string) => void

  private constructor(
    private readonly child: ChildProcess,
    onConsole: (text: string) => void,
  ) {
    this.exited = new Promise((resolve) => child.once('close', (code) => resolve(code)))
    void this.exited.then(() => {
      this.ended = true
      this.waiting?.(undefined)
    })
    // QEMU's own messages (not the guest's): kept for errors only
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8')
      stream.on('data', (t: string) => (this.qemuOutput = (this.qemuOutput + t).slice(-2000)))
    }
    this.onConsole = onConsole
  }

  static async start(spec: BuildVmSpec, accel: Accel, onConsole: (text: string) => void): Promise<BuildVm> {
    // unix socket paths are short (108 bytes): a private directory of their own under the temp dir
    const runDir = await mkdtemp(join(tmpdir(), 'form-buildvm-'))
    const ctlPath = join(runDir, 'ctl.sock')
    const qmpPath = join(runDir, 'qmp.sock')
    const conPath = join(runDir, 'console.sock')
    const args = [
      '-name', 'form-build', '-pidfile', spec.pidFile,
      '-machine', `q35,accel=${accel}`, '-cpu', accel === 'kvm' ? 'host' : 'max',
      '-smp', String(spec.vcpus), '-m', String(spec.memoryMb),
      '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-kernel', spec.kernel, '-initrd', spec.initrd, '-append', spec.cmdline,
      '-chardev', `socket,id=con,path=${conPath},server=on,wait=off`, '-serial', 'chardev:con',
      '-chardev', `socket,id=ctl,path=${ctlPath},server=on,wait=off`, '-serial', 'chardev:ctl',
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      '-device', 'virtio-rng-pci',
    ]
    spec.disks.forEach((d, i) => {
      args.push('-drive', `file=${d.file},format=${d.format},if=none,id=d${i},cache=unsafe,discard=unmap${d.readonly ? ',readonly=on' : ''}`)
      args.push('-device', `virtio-blk-pci,drive=d${i}`)
    })
    if (spec.netdev) args.push('-netdev', spec.netdev, '-device', 'virtio-net-pci,netdev=n0')
    else args.push('-nic', 'none')
    const binary = spec.binary ?? 'qemu-system-x86_64'
    const argv = [...(spec.wrap ?? []), 'sh', '-c', WATCH, 'form-build-watch', binary, ...args]
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] })
    void new Promise((resolve) => child.once('close', resolve)).then(() => rm(runDir, { recursive: true, force: true }))
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined))
      child.once('error', resolve)
    })
    if (spawned) throw new FormError('BUILD_VM_FAILED', `cannot start the build VM (${binary}): ${spawned.message}`, { hint: 'the builder needs qemu-system-x86 (and qemu-utils)' })
    const vm = new BuildVm(child, onConsole)
    const onAbort = () => vm.kill()
    spec.signal?.addEventListener('abort', onAbort, { once: true })
    void vm.exited.then(() => spec.signal?.removeEventListener('abort', onAbort))
    try {
      vm.qmp = await QmpClient.connect(qmpPath, { timeoutMs: 30_000, gone: () => vm.ended })
      vm.console = await connectRetry(conPath, () => vm.ended)
      vm.ctl = await connectRetry(ctlPath, () => vm.ended)
    } catch (error) {
      vm.kill()
      throw new FormError('BUILD_VM_FAILED', `the build VM did not start: ${(error as Error).message}`, { cause: error })
    }
    vm.console.setEncoding('utf8')
    vm.console.on('error', () => {})
    vm.console.on('data', (t: string) => vm.onConsole(t))
    vm.ctl.setEncoding('utf8')
    vm.ctl.on('error', () => {})
    vm.ctl.on('data', (chunk: string) => {
      vm.ctlBuffer += chunk
      for (let nl = vm.ctlBuffer.indexOf('\n'); nl >= 0; nl = vm.ctlBuffer.indexOf('\n')) {
        const line = vm.ctlBuffer.slice(0, nl).replace(/\r$/, '')
        vm.ctlBuffer = vm.ctlBuffer.slice(nl + 1)
        // a line longer than this is not the agent's: drop it
        if (line.length > 4096) continue
        if (vm.waiting) {
          const w = vm.waiting
          vm.waiting = undefined
          w(line)
        } else if (vm.lines.length < 1000) vm.lines.push(line)
      }
      if (vm.ctlBuffer.length > 65536) vm.ctlBuffer = ''
    })
    return vm
  }

  /** The agent's next control line; undefined when the VM has ended. */
  next(): Promise<string | undefined> {
    if (this.lines.length) return Promise.resolve(this.lines.shift())
    if (this.ended) return Promise.resolve(undefined)
    return new Promise((resolve) => (this.waiting = resolve))
  }

  send(line: string): void {
    this.ctl.write(`${line}\n`)
  }

  kill(): void {
    if (!this.ended) this.child.stdin?.end()
  }

  async close(): Promise<void> {
    // always: the watcher's reader ends too
    this.child.stdin?.end()
    await this.exited
    this.qmp?.close()
    this.ctl?.destroy()
    this.console?.destroy()
  }
}

async function connectRetry(path: string, gone: () => boolean): Promise<Socket> {
  const deadline = Date.now() + 30_000
  let last: Error | undefined
  while (Date.now() < deadline && !gone()) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect(path)
        s.once('connect', () => resolve(s))
        s.once('error', reject)
      })
    } catch (error) {
      last = error as Error
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  throw new Error(`cannot reach the control socket ${path}: ${last?.message ?? 'QEMU exited'}`)
}
