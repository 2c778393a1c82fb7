/**
 * The hypervisor interface the instance controller drives. A backend is stateless between calls:
 * everything it needs to find a VM again (pid file, control socket) lives in files named by the
 * spec, so a node that was killed can re-adopt the VMs it left running.
 */

export type BackendName = 'qemu' | 'cloud-hypervisor'
export type Accel = 'kvm' | 'tcg'

export interface VmSpec {
  /** short unique name ([a-z0-9-], at most 24 characters): in process arguments and file names */
  name: string
  /** kernel to boot directly (bzImage or a PVH ELF), optional initrd, full command line */
  kernel: string
  initrd?: string
  cmdline: string
  /** the instance's own raw disk (a copy, never the image blob) */
  disk: string
  vcpus: number
  memoryMb: number
  /** tap device on the node's bridge, created before boot */
  tap: string
  mac: string
  /** the guest's serial console is appended here */
  consoleLog: string
  /** control socket and pid file: a short directory (Unix socket paths are limited to 108 bytes) */
  runDir: string
  /** the hypervisor process's own stdout and stderr */
  processLog: string
}

export interface VmStatus {
  /** the VM process exists */
  alive: boolean
  pid?: number
  /** the hypervisor's own word for the guest, e.g. 'running', 'shutdown', 'paused' */
  status?: string
}

export type ShutdownOutcome = 'powered-off' | 'quit' | 'killed' | 'not-running'

/** A VM process, booted or adopted. */
export interface Vm {
  readonly pid: number
  /** resolves when the VM process is gone */
  readonly exited: Promise<void>
  info(): Promise<VmStatus>
  /** ACPI power-off, then after `timeoutMs` a hard stop; resolves once the process has exited */
  shutdown(timeoutMs: number): Promise<ShutdownOutcome>
}

export interface BackendInfo {
  backend: BackendName
  accel: Accel
  /** 'qemu-tcg', 'qemu-kvm', 'cloud-hypervisor': what observed records carry */
  label: string
  binary: string
  version?: string
  /** why the faster options were not chosen (no KVM, no cloud-hypervisor binary) */
  notes: string[]
}

export interface Hypervisor {
  readonly info: BackendInfo
  /** checks the spec and prepares what boot needs; throws a FormError saying what is wrong */
  create(spec: VmSpec): Promise<void>
  /** starts the VM process; resolves once it runs and answers on its control socket */
  boot(spec: VmSpec): Promise<Vm>
  /** the VM a previous node process left running for this spec, if its process still lives */
  adopt(spec: VmSpec): Promise<Vm | undefined>
  /** removes the control socket and pid file of a VM that is gone */
  cleanup(spec: VmSpec): Promise<void>
  consoleLog(spec: VmSpec): string
}
