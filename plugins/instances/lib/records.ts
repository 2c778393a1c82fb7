import * as t from 'typanion'
import { ADDRESS, HEX64 } from '../../../core/patterns.js'

/**
 * The instance records in state (collection `instances`, declared in ./collections.ts):
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
/** A whole number within REPLICAS or FAILOVER_S: the one check of `form pack ship`'s flags and of the CLI config's ship defaults. */
export const wholeWithin = (bounds: { min: number; max: number }) => t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(bounds.min, bounds.max))
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

export type HealthState = 'starting' | 'healthy' | 'unhealthy'

/** What the observed record says of a replica's health (see ObservedInstance.health). */
export interface HealthReport {
  state: HealthState
  /** when it entered this state (ms since the epoch) */
  since: number
  /** with `unhealthy`: the failing check and why, e.g. "http /healthz on 8080: connection refused" */
  reason?: string
  /** the last time it was unhealthy, kept after it recovers so the owner sees why it was restarted */
  lastFailure?: { reason: string; at: number }
  /** restarts its node made because it was unhealthy (since it was shipped or moved here) */
  restarts: number
  /** with `unhealthy`: when its node restarts it */
  restartAt?: number
  /** how many checks are probed */
  checks: number
}

export interface StopReport {
  how: 'powered-off' | 'forced'
  /** from the power button to the VM process gone */
  ms: number
  /** why it was forced */
  reason?: string
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

export interface Resources {
  vcpus: number
  memoryMb: number
  diskGb: number
}
