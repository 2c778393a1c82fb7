import { DEFAULT_INSTANCE_RESOURCES } from '../../../instances/index.js'

/** Resource limits of a network, chosen by configuration (`--profile`), never hard-coded in checks. */
export interface LimitProfile {
  description: string
  vcpus: [number, number]
  memoryMb: [number, number]
  diskGb: [number, number]
}

export const PROFILES: Record<string, LimitProfile> = {
  default: { description: 'the limits of the Formfile language', vcpus: [1, 128], memoryMb: [512, 256_000], diskGb: [5, 65_535] },
  devnet: { description: 'the development network: at most 2 vCPU, 512-4096 MB, 5 GB disk', vcpus: [1, 2], memoryMb: [512, 4096], diskGb: [5, 5] },
}

export const DEFAULT_RESOURCES = DEFAULT_INSTANCE_RESOURCES
