import { CloudHypervisor } from './cloud-hypervisor.js'
import { chooseBackend, type DetectOptions } from './detect.js'
import { QemuHypervisor } from './qemu.js'
import type { Hypervisor } from './types.js'

export type { Accel, BackendInfo, BackendName, Hypervisor, ShutdownOutcome, Vm, VmSpec, VmStatus } from './types.js'
export { chooseBackend, kvmStatus } from './detect.js'
export { bootableKernel } from './kernel.js'
export { qemuArgs } from './qemu.js'

/** The backend `[node] hypervisor` asks for, as this machine can run it. */
export async function openHypervisor(options: DetectOptions): Promise<Hypervisor> {
  const c = await chooseBackend(options)
  const label = c.backend === 'qemu' ? `qemu-${c.accel}` : 'cloud-hypervisor'
  const info = { backend: c.backend, accel: c.accel, label, binary: c.binary, version: c.version, notes: c.notes }
  return c.backend === 'qemu' ? new QemuHypervisor(info) : new CloudHypervisor(info)
}
