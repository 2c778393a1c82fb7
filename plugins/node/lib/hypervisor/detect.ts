import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import { FormError } from '../../../../core/errors.js'
import type { Accel, BackendName } from './types.js'

/**
 * Which backend and accelerator this machine can really use. /dev/kvm alone is not enough: some
 * hosts (nested, or PVM's kvm_pvm module) expose a /dev/kvm that opens but cannot run a stock guest
 * kernel, and a guest started there hangs without a word. So KVM also needs the CPU's hardware
 * virtualization flags, and PVM is named for what it is.
 */

export interface KvmStatus {
  usable: boolean
  reason?: string
}

export async function kvmStatus(device = '/dev/kvm'): Promise<KvmStatus> {
  try {
    await access(device, constants.R_OK | constants.W_OK)
  } catch (error) {
    return { usable: false, reason: (error as NodeJS.ErrnoException).code === 'ENOENT' ? `${device} does not exist` : `${device} cannot be opened read-write` }
  }
  // built in or loaded, a kernel part shows in /sys/module (there may be no /proc/modules at all)
  if (await access('/sys/module/kvm_pvm').then(() => true, () => false)) return { usable: false, reason: `${device} is PVM (kvm_pvm), which runs only PVM-enabled guest kernels` }
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1].split(/\s+/) ?? []
  if (!flags.includes('vmx') && !flags.includes('svm')) return { usable: false, reason: `${device} exists but the CPU shows no vmx/svm virtualization flag` }
  return { usable: true }
}

/** The first line of `binary --version`, or undefined when it cannot run. */
export function binaryVersion(binary: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(binary, ['--version'], { timeout: 10_000 }, (error, stdout) => resolve(error ? undefined : stdout.split('\n')[0].trim()))
  })
}

export interface BackendChoice {
  backend: BackendName
  accel: Accel
  binary: string
  version?: string
  notes: string[]
}

export interface DetectOptions {
  hypervisor: 'auto' | 'qemu' | 'cloud-hypervisor'
  qemu: string
  cloudHypervisor: string
  kvm?: () => Promise<KvmStatus>
  version?: (binary: string) => Promise<string | undefined>
}

/**
 * `auto`: Cloud Hypervisor when its binary runs and KVM is usable, else QEMU with KVM, else QEMU
 * with TCG. Naming a backend that cannot run here is an error that says why.
 */
export async function chooseBackend(o: DetectOptions): Promise<BackendChoice> {
  const kvm = await (o.kvm ?? kvmStatus)()
  const version = o.version ?? binaryVersion
  const notes: string[] = []
  if (!kvm.usable) notes.push(`no KVM: ${kvm.reason}`)
  if (o.hypervisor !== 'qemu') {
    const chv = await version(o.cloudHypervisor)
    if (chv && kvm.usable) return { backend: 'cloud-hypervisor', accel: 'kvm', binary: o.cloudHypervisor, version: chv, notes }
    const why = !chv ? `${o.cloudHypervisor} is not installed` : 'it needs KVM'
    if (o.hypervisor === 'cloud-hypervisor') {
      throw new FormError('VMM_BACKEND_UNAVAILABLE', `[node] hypervisor = "cloud-hypervisor", but ${why}${kvm.usable ? '' : ` (${kvm.reason})`}`, {
        hint: 'install cloud-hypervisor on a machine with KVM, or set [node] hypervisor = "auto"',
      })
    }
    notes.push(`not cloud-hypervisor: ${why}`)
  }
  const qemu = await version(o.qemu)
  if (!qemu) {
    throw new FormError('VMM_BACKEND_UNAVAILABLE', `no hypervisor can run here: ${o.qemu} is not installed${notes.length ? ` (${notes.join('; ')})` : ''}`, {
      hint: 'install qemu-system-x86 (apt-get install qemu-system-x86), or set [node] qemu to its path',
    })
  }
  return { backend: 'qemu', accel: kvm.usable ? 'kvm' : 'tcg', binary: o.qemu, version: qemu, notes }
}
