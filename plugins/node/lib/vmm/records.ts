import { createHash } from 'node:crypto'
import type { HealthReport } from './health.js'
import { ADDRESS, HEX64 } from '../../../../core/patterns.js'

/**
 * The instance records in state (collection `instances`, see plugins/state/lib/rules.ts):
 * - `instances/<owner>/<id>/desired`, written by the owner;
 * - `instances/<owner>/<id>/observed/<node>`, written by the node that hosts it.
 * Both sides (the node's controller and the developer's commands) read them through this module.
 */

export type DesiredState = 'running' | 'stopped' | 'deleted'
export type ObservedState = 'pending' | 'creating' | 'booting' | 'running' | 'stopped' | 'failed' | 'deleted'

export interface DesiredInstance {
  buildId: string
  /** SHA-256 of the image manifest */
  image: string
  /** address of the node assigned to host it */
  node: string
  state: DesiredState
  name: string
  vcpus: number
  memoryMb: number
  diskGb: number
  /** nodes the replica may move to when `node` is gone, best first; other live members with room follow them (see hostsOf) */
  candidates?: string[]
  /** a node without a heartbeat for this long is gone (every node must use the same value) */
  failoverMs?: number
}

/** How long a node may miss heartbeats before its replicas move, when the record does not say. */
export const DEFAULT_FAILOVER_MS = 60_000
/** `form pack ship --replicas` and the CLI config's ship.replicas: the bounds and the default. */
export const REPLICAS = { min: 1, max: 64, default: 3 }
/** `--failover-after` and ship.failoverAfterS, in seconds (records hold it in ms, up to the same week). */
export const FAILOVER_S = { min: 5, max: 7 * 24 * 3600, default: DEFAULT_FAILOVER_MS / 1000 }
/**
 * What an instance gets when neither its record nor its image says: the Formfile's defaults (a Formfile
 * without VCPU, MEM or DISK ships these), so a node never sizes a replica otherwise than its build did.
 */
export const DEFAULT_INSTANCE_RESOURCES = { vcpus: 1, memoryMb: 512, diskGb: 5 }
export const MAX_CANDIDATES = 32

/**
 * What the hosting node reports, replicated to every node: so it never holds the console's output
 * (which can hold the owner's secrets); the owner reads that from the node (POST /v1/node/instances/console).
 */
export interface ObservedInstance {
  state: ObservedState
  reason?: string
  ip?: string
  mac?: string
  /** the image of the disk this node created for it (with any state but `deleted`) */
  image?: string
  pid?: number
  /** how long the last creation and boot took here, in ms: fetching the image, copying its disk, booting to FORM-READY */
  timings?: { imageMs?: number; diskMs?: number; bootMs?: number }
  /** how the VM last stopped (with `stopped`): the guest powered itself off, or the node had to force it, and why */
  shutdown?: StopReport
  /** 'qemu-tcg', 'qemu-kvm' or 'cloud-hypervisor' */
  backend: string
  /**
   * The SSH host keys (`<type> <base64>`) the guest printed on its console at this boot: the
   * console is written by the guest alone, so `form manage ssh` trusts these for strict checking.
   */
  hostKeys?: string[]
  /** with `booting` and `running`, when the image has health checks: whether its service answers them */
  health?: HealthReport
  updatedAt: number
}

export interface StopReport {
  how: 'powered-off' | 'forced'
  /** from the power button to the VM process gone */
  ms: number
  /** why it was forced */
  reason?: string
}

/** What a hypervisor's shutdown outcome tells the owner; undefined when there was no VM to stop. */
export function stopReport(outcome: 'powered-off' | 'quit' | 'killed' | 'not-running', ms: number, timeoutMs: number): StopReport | undefined {
  if (outcome === 'not-running') return undefined
  if (outcome === 'powered-off') return { how: 'powered-off', ms }
  const why = `the guest did not power off within ${Math.round(timeoutMs / 1000)} s of the ACPI power button ([node] shutdown_timeout_s)`
  return { how: 'forced', ms, reason: outcome === 'quit' ? `${why}: QEMU was told to quit` : `${why}: the VM process was killed` }
}

export const DESIRED_STATES: DesiredState[] = ['running', 'stopped', 'deleted']

export type InstanceKey = { owner: string; id: string; kind: 'desired' } | { owner: string; id: string; kind: 'observed'; node: string }

export function parseInstanceKey(key: string): InstanceKey | undefined {
  const p = key.split('/')
  if (p.length === 3 && p[2] === 'desired') return { owner: p[0], id: p[1], kind: 'desired' }
  if (p.length === 4 && p[2] === 'observed') return { owner: p[0], id: p[1], kind: 'observed', node: p[3] }
  return undefined
}

export const desiredKey = (owner: string, id: string) => `${owner}/${id}/desired`
export const observedKey = (owner: string, id: string, node: string) => `${owner}/${id}/observed/${node}`

const positiveInt = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= max

/** A desired record checked as untrusted input: the value, or why it cannot be acted on. */
export function parseDesired(value: unknown): { desired: DesiredInstance } | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'the desired record is not an object' }
  const v = value as Record<string, unknown>
  if (typeof v.image !== 'string' || !HEX64.test(v.image)) return { problem: 'image must be the SHA-256 (hex) of an image manifest' }
  if (typeof v.node !== 'string' || !ADDRESS.test(v.node)) return { problem: 'node must be a node address (0x + 40 hex)' }
  if (!DESIRED_STATES.includes(v.state as DesiredState)) return { problem: `state must be one of ${DESIRED_STATES.join(', ')}` }
  if (v.buildId !== undefined && typeof v.buildId !== 'string') return { problem: 'buildId must be a string' }
  if (v.name !== undefined && typeof v.name !== 'string') return { problem: 'name must be a string' }
  for (const [field, max] of [['vcpus', 256], ['memoryMb', 4 * 1024 * 1024], ['diskGb', 64 * 1024], ['failoverMs', FAILOVER_S.max * 1000]] as const) {
    if (v[field] !== undefined && !positiveInt(v[field], max)) return { problem: `${field} must be a whole number from 1 to ${max}` }
  }
  if (v.candidates !== undefined && (!Array.isArray(v.candidates) || v.candidates.length > MAX_CANDIDATES || !v.candidates.every((c) => typeof c === 'string' && ADDRESS.test(c)))) {
    return { problem: `candidates must be a list of at most ${MAX_CANDIDATES} node addresses` }
  }
  return {
    desired: {
      buildId: (v.buildId as string | undefined) ?? '',
      image: v.image,
      node: v.node,
      state: v.state as DesiredState,
      name: (v.name as string | undefined) ?? '',
      vcpus: (v.vcpus as number | undefined) ?? 0,
      memoryMb: (v.memoryMb as number | undefined) ?? 0,
      diskGb: (v.diskGb as number | undefined) ?? 0,
      ...(v.candidates ? { candidates: v.candidates as string[] } : {}),
      ...(v.failoverMs ? { failoverMs: v.failoverMs as number } : {}),
    },
  }
}

/**
 * A short, stable name for an instance on a node: in its directory, VM process, tap and MAC.
 * 12 hex digits keep the tap name (`fv` + 12) inside Linux's 15-character limit.
 */
export function shortName(owner: string, id: string): string {
  return createHash('sha256').update(`${owner}/${id}`).digest('hex').slice(0, 12)
}

/** A locally administered unicast MAC derived from the instance, stable across reboots. */
export function macFor(owner: string, id: string): string {
  const h = createHash('sha256').update(`mac:${owner}/${id}`).digest()
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':')
}

/** A hostname from the instance's name: RFC 1123 label characters, at most 63. */
export function hostnameFor(name: string, id: string): string {
  const clean = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '')
  return clean || `i-${id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 60)}`
}

/**
 * The guest's kernel command line: the image's own, then the keys the guest configures its network
 * from (the image contract: form.ip, form.gw, form.hostname, form.dns), `panic=-1` so a panicking
 * guest ends its VM (with -no-reboot) instead of hanging, and under TCG a fixed TSC frequency,
 * without which the kernel's TSC calibration hangs at random.
 */
export function guestCmdline(base: string, o: { ip: string; prefix: number; gateway: string; hostname: string; dns: string; accel: 'kvm' | 'tcg' }): string {
  const ours = /^(form\.(ip|gw|hostname|dns)|panic|tsc_early_khz)=/
  const kept = base.split(/\s+/).filter((w) => w && !ours.test(w))
  return [...kept, `form.ip=${o.ip}/${o.prefix}`, `form.gw=${o.gateway}`, `form.hostname=${o.hostname}`, `form.dns=${o.dns}`, 'panic=-1', ...(o.accel === 'tcg' ? ['tsc_early_khz=2000000'] : [])].join(' ')
}

export interface Resources {
  vcpus: number
  memoryMb: number
  diskGb: number
}

/**
 * Why `want` does not fit beside what is `held`, or undefined when it fits. Never over-commits: the
 * sum must stay within the capacity the operator offers.
 */
export function refusal(capacity: Resources, held: Resources[], want: Resources): string | undefined {
  const used = held.reduce((a, r) => ({ vcpus: a.vcpus + r.vcpus, memoryMb: a.memoryMb + r.memoryMb, diskGb: a.diskGb + r.diskGb }), { vcpus: 0, memoryMb: 0, diskGb: 0 })
  const short: string[] = []
  if (used.vcpus + want.vcpus > capacity.vcpus) short.push(`${want.vcpus} vCPU requested, ${capacity.vcpus - used.vcpus} of ${capacity.vcpus} free`)
  if (used.memoryMb + want.memoryMb > capacity.memoryMb) short.push(`${want.memoryMb} MiB memory requested, ${capacity.memoryMb - used.memoryMb} of ${capacity.memoryMb} free`)
  if (used.diskGb + want.diskGb > capacity.diskGb) short.push(`${want.diskGb} GiB disk requested, ${capacity.diskGb - used.diskGb} of ${capacity.diskGb} free`)
  if (!short.length) return undefined
  return `does not fit on this node: ${short.join('; ')} (the node offers what its operator config's [node.resources] sets, else the host minus [node.reserve]: its operator may raise that, or delete instances that hold room)`
}
