/**
 * The build records in state (collection `builds`, see plugins/state/lib/rules.ts):
 * - `builds/<owner>/<build>`: the owner's request (which node builds it, from which uploaded
 *   context); rewriting it with a new `request` id builds again, with `cancel` it stops;
 * - `builds/<owner>/<build>/status/<node>`: what the builder node reports.
 * Neither holds a secret: the Formfile (with password hashes), the build log and a failed step's
 * output stay on the builder node, which serves them to the build's owner alone (signed requests).
 * A request names a request id the builder gave its owner and a context its owner uploaded: the
 * builder refuses any other (ids and context hashes are public here, but only as the owner's).
 */

import type { BaseProgress } from './builder/base-progress.js'
import { ADDRESS, HEX64 } from '../../../core/patterns.js'

export type BuildState = 'queued' | 'building' | 'built' | 'failed' | 'cancelled'
export const FINAL_STATES: BuildState[] = ['built', 'failed', 'cancelled']

export interface BuildRequest {
  name: string
  /** address of the node that builds it */
  node: string
  /** a fresh id per attempt */
  request: string
  /** SHA-256 of the uploaded context */
  context: string
  requestedAt: number
  cancel?: boolean
}

export interface BuildStepStatus {
  line: number
  text: string
  cached: boolean
  ms: number
}

export interface BuildStatus {
  request: string
  name: string
  state: BuildState
  /** what the build is doing now */
  phase?: 'base' | 'steps' | 'finalize' | 'image'
  current?: { index: number; total: number; line: number; text: string }
  base?: { cached: boolean; ms: number }
  /** while a base is built: mmdebstrap's phase and package counts (no output) */
  baseProgress?: BaseProgress
  steps: BuildStepStatus[]
  /** SHA-256 of the image manifest, once built */
  image?: string
  /** true when an identical earlier build's image was reused */
  reused?: boolean
  /** what `form pack ship` needs from the built image: its resources, users (names only) and ports */
  resources?: { vcpus: number; memoryMb: number; diskGb: number; gpu?: { model: string; count: number } }
  users?: string[]
  expose?: unknown[]
  error?: BuildFailure

  queuedAt: number
  startedAt?: number
  finishedAt?: number
  updatedAt: number
}

/** Why a build failed, as state holds it: a code, one short line, the Formfile line, never output. */
export interface BuildFailure {
  code: string
  /** the first line of the error, at most MAX_FAILURE_MESSAGE characters */
  message: string
  line?: number
  instruction?: string
  exitCode?: number
}

/** What the builder node serves the owner about a failed build (never replicated). */
export interface PrivateFailure extends BuildFailure {
  request: string
  /** the whole error message */
  detail: string
  /** the end of what the failing step printed */
  output: string
}

export const MAX_FAILURE_MESSAGE = 300

/** The part of an error that may go into replicated state: no command output, which can hold secrets. */
export function publicFailure(code: string, message: string, step?: { line?: number; instruction?: string }): BuildFailure {
  const first = message.split('\n', 1)[0]
  const exit = /exit(?:ed with)? code (\d{1,3})\b/.exec(first)?.[1]
  return {
    code,
    message: first.length > MAX_FAILURE_MESSAGE ? `${first.slice(0, MAX_FAILURE_MESSAGE - 1)}…` : first,
    ...(step?.line ? { line: step.line } : {}),
    ...(step?.instruction ? { instruction: step.instruction.slice(0, MAX_FAILURE_MESSAGE) } : {}),
    ...(exit ? { exitCode: Number(exit) } : {}),
  }
}

export const requestKey = (owner: string, build: string) => `${owner}/${build}`
export const statusKey = (owner: string, build: string, node: string) => `${owner}/${build}/status/${node}`


export function parseBuildKey(key: string): { owner: string; build: string; node?: string } | undefined {
  const p = key.split('/')
  if (p.length === 2) return { owner: p[0], build: p[1] }
  if (p.length === 4 && p[2] === 'status') return { owner: p[0], build: p[1], node: p[3] }
  return undefined
}

/** a build request's id: the builder gives out 8 random bytes, in hex */
export const REQUEST_ID = /^[0-9a-f]{16}$/

/** A request record checked as untrusted input. */
export function parseBuildRequest(value: unknown): { request: BuildRequest } | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'the build request is not an object' }
  const v = value as Record<string, unknown>
  if (typeof v.node !== 'string' || !ADDRESS.test(v.node)) return { problem: 'node must be a node address' }
  if (typeof v.context !== 'string' || !HEX64.test(v.context)) return { problem: 'context must be the SHA-256 of an uploaded context' }
  if (typeof v.request !== 'string' || !REQUEST_ID.test(v.request)) return { problem: 'request must be the 16 hex digits the builder gave the wallet' }
  if (typeof v.name !== 'string') return { problem: 'name must be a string' }
  return {
    request: { name: v.name, node: v.node, request: v.request, context: v.context, requestedAt: Number(v.requestedAt) || 0, cancel: v.cancel === true },
  }
}
