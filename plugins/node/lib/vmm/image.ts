import { FormError } from '../../../../core/errors.js'
import { healthChecksOf, type HealthCheck } from './health.js'
import { HEX64 } from '../../../../core/patterns.js'

/**
 * The image contract between the builder and the hypervisor manager. An image is a JSON manifest
 * stored as a blob (its SHA-256 is the image id); the kernel, initrd and disk it names are blobs of
 * the same store.
 */

export const IMAGE_SCHEMA = 'form.image/1'

export interface BlobRef {
  sha256: string
  size: number
}

export interface ImageManifest {
  schema: typeof IMAGE_SCHEMA
  buildId: string
  name: string
  owner: string
  createdAt: string | number
  kernel: BlobRef
  initrd?: BlobRef
  disk: BlobRef & { format: 'raw'; fs: string }
  /** the kernel command line; the node appends the network keys (see guestCmdline) */
  cmdline: string
  resources: { vcpus: number; memoryMb: number; diskGb: number; gpu?: { model: string; count: number } }
  expose?: unknown[]
  /**
   * What the hosting node probes (see health.ts). Absent in images built before HEALTHCHECK: then
   * parseManifest fills in a TCP check for each EXPOSEd TCP port; empty means no checks.
   */
  health?: HealthCheck[]
  users?: unknown[]
  entrypoint?: unknown[]
  formfile?: string
}

const MAX_MANIFEST_BYTES = 1024 * 1024

export { MAX_MANIFEST_BYTES }

function blobRef(v: unknown, field: string): BlobRef {
  const r = v as Partial<BlobRef> | undefined
  if (!r || typeof r.sha256 !== 'string' || !HEX64.test(r.sha256) || !Number.isSafeInteger(r.size) || (r.size as number) < 0) {
    throw new FormError('VMM_BAD_IMAGE', `the image manifest's ${field} must be {sha256, size}`)
  }
  return { sha256: r.sha256, size: r.size as number }
}

/** Parses and checks a manifest; every problem is a VMM_BAD_IMAGE error naming the field. */
export function parseManifest(bytes: Uint8Array | string): ImageManifest {
  let m: Record<string, any>
  try {
    m = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new FormError('VMM_BAD_IMAGE', 'the image manifest is not JSON')
  }
  if (typeof m !== 'object' || m === null) throw new FormError('VMM_BAD_IMAGE', 'the image manifest is not a JSON object')
  if (m.schema !== IMAGE_SCHEMA) throw new FormError('VMM_BAD_IMAGE', `the image manifest's schema is ${JSON.stringify(m.schema)}, not "${IMAGE_SCHEMA}"`, { hint: 'rebuild the image with this version of form' })
  const kernel = blobRef(m.kernel, 'kernel')
  const initrd = m.initrd === undefined || m.initrd === null ? undefined : blobRef(m.initrd, 'initrd')
  const disk = blobRef(m.disk, 'disk')
  if (m.disk.format !== 'raw') throw new FormError('VMM_BAD_IMAGE', `the image disk format is ${JSON.stringify(m.disk.format)}; only "raw" is supported`)
  if (typeof m.cmdline !== 'string') throw new FormError('VMM_BAD_IMAGE', "the image manifest's cmdline must be a string")
  const health = healthChecksOf(m)
  if (typeof health === 'string') throw new FormError('VMM_BAD_IMAGE', `the image manifest's ${health}`, { hint: 'rebuild the image with this version of form' })
  const r = m.resources ?? {}
  for (const f of ['vcpus', 'memoryMb', 'diskGb']) {
    if (!Number.isInteger(r[f]) || r[f] <= 0) throw new FormError('VMM_BAD_IMAGE', `the image manifest's resources.${f} must be a positive whole number`)
  }
  return {
    ...m,
    schema: IMAGE_SCHEMA,
    buildId: String(m.buildId ?? ''),
    name: String(m.name ?? ''),
    owner: String(m.owner ?? ''),
    createdAt: m.createdAt,
    kernel,
    initrd,
    disk: { ...disk, format: 'raw', fs: String(m.disk.fs ?? '') },
    cmdline: m.cmdline,
    health,
    resources: {
      vcpus: r.vcpus,
      memoryMb: r.memoryMb,
      diskGb: r.diskGb,
      ...(r.gpu && typeof r.gpu.model === 'string' && Number.isInteger(r.gpu.count) && r.gpu.count > 0 ? { gpu: { model: r.gpu.model, count: r.gpu.count } } : {}),
    },
  }
}
