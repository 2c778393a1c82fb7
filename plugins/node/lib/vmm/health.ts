import { connect, type Socket } from 'node:net'
import { setTimeout as sleepFor } from 'node:timers/promises'
import type { HealthReport, HealthState } from '../../../instances/index.js'

/**
 * Health of a replica's service, as its hosting node sees it. The image manifest's `health` list
 * (written by the builder from the Formfile's HEALTHCHECK lines, or one TCP check per EXPOSEd TCP
 * port) says what to probe; the node probes the instance's address from its side of the bridge,
 * and the controller restarts a replica that turns unhealthy, with backoff.
 */

export interface HealthCheck {
  kind: 'tcp' | 'http'
  port: number
  /** http only: the path of the GET; a 2xx or 3xx answer passes */
  path?: string
  intervalMs: number
  timeoutMs: number
  /** consecutive failures that make the replica unhealthy */
  retries: number
  /** failures during this long after the boot do not count (a success still makes it healthy) */
  startPeriodMs: number
}


export const HEALTH_DEFAULTS = { intervalMs: 10_000, timeoutMs: 3_000, retries: 3, startPeriodMs: 30_000 } as const

/** Every bound of a check, as [min, max]; the Formfile parser and the manifest check use the same. */
export const HEALTH_LIMITS = {
  intervalMs: [1_000, 3_600_000],
  timeoutMs: [100, 60_000],
  retries: [1, 100],
  startPeriodMs: [0, 3_600_000],
} as const satisfies Record<string, readonly [number, number]>

/** Checks per image: each is one probe per interval, from the node, for every replica. */
export const MAX_HEALTH_CHECKS = 16
export const MAX_HEALTH_PATH = 512
/** An HTTP probe reads at most this much of the answer: the status line is all it needs. */
export const MAX_HTTP_PROBE_BYTES = 4096
/** Probes a node runs at once, over all its replicas (the others wait their turn). */
export const MAX_CONCURRENT_PROBES = 16
/** Restart backoff: the first restart at once, then 10 s doubling to 5 min; reset once healthy this long. */
export const RESTART_BACKOFF_MS = { first: 10_000, max: 300_000, resetAfterHealthyMs: 300_000 } as const

/** A path an HTTP check may GET: absolute, visible ASCII only (it goes into the request line as is). */
export const HEALTH_PATH = /^\/[\x21-\x7e]*$/

/** "500ms", "10s", "2m", "1h", or sums like "1m30s", in milliseconds; undefined when not one. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h))+$/.test(text)) return undefined
  let ms = 0
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms']
  return Number.isSafeInteger(ms) ? ms : undefined
}

/** The shortest text parseDuration reads back as `ms`. */
export function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

/** "tcp 8080" or "http /healthz on 8080": how reasons and listings name a check. */
export function describeCheck(c: Pick<HealthCheck, 'kind' | 'port' | 'path'>): string {
  return c.kind === 'http' ? `http ${c.path} on ${c.port}` : `tcp ${c.port}`
}

/** One TCP check, with the defaults, for each EXPOSEd TCP port (the first port of a range). */
export function defaultHealthChecks(expose: unknown): HealthCheck[] {
  const ports = new Set<number>()
  for (const e of Array.isArray(expose) ? expose : []) {
    const p = e as { port?: unknown; protocol?: unknown }
    if ((p.protocol ?? 'tcp') === 'tcp' && Number.isInteger(p.port) && (p.port as number) >= 1 && (p.port as number) <= 65535) ports.add(p.port as number)
  }
  return [...ports].slice(0, MAX_HEALTH_CHECKS).map((port) => ({ kind: 'tcp', port, ...HEALTH_DEFAULTS }))
}

/** Why `v` is not a valid check, or undefined. */
function checkProblem(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return 'is not an object'
  const c = v as Record<string, unknown>
  if (c.kind !== 'tcp' && c.kind !== 'http') return 'kind must be "tcp" or "http"'
  if (!Number.isInteger(c.port) || (c.port as number) < 1 || (c.port as number) > 65535) return 'port must be 1-65535'
  if (c.kind === 'http' && (typeof c.path !== 'string' || c.path.length > MAX_HEALTH_PATH || !HEALTH_PATH.test(c.path))) return `path must be an absolute path of visible ASCII, at most ${MAX_HEALTH_PATH} characters`
  for (const [field, [min, max]] of Object.entries(HEALTH_LIMITS)) {
    if (!Number.isInteger(c[field]) || (c[field] as number) < min || (c[field] as number) > max) return `${field} must be a whole number from ${min} to ${max}`
  }
  if ((c.timeoutMs as number) > (c.intervalMs as number)) return 'timeoutMs must not exceed intervalMs'
  return undefined
}

/**
 * The checks an image asks for: its `health` list (checked: the manifest is untrusted input), or
 * when it has none (an image built before HEALTHCHECK), the default TCP checks of its EXPOSE.
 * A string when the list is invalid.
 */
export function healthChecksOf(manifest: { health?: unknown; expose?: unknown }): HealthCheck[] | string {
  if (manifest.health === undefined || manifest.health === null) return defaultHealthChecks(manifest.expose)
  if (!Array.isArray(manifest.health)) return 'health must be a list of checks'
  if (manifest.health.length > MAX_HEALTH_CHECKS) return `health holds ${manifest.health.length} checks; at most ${MAX_HEALTH_CHECKS}`
  const out: HealthCheck[] = []
  for (const [i, v] of manifest.health.entries()) {
    const problem = checkProblem(v)
    if (problem) return `health[${i}] ${problem}`
    const c = v as HealthCheck
    out.push({ kind: c.kind, port: c.port, ...(c.kind === 'http' ? { path: c.path } : {}), intervalMs: c.intervalMs, timeoutMs: c.timeoutMs, retries: c.retries, startPeriodMs: c.startPeriodMs })
  }
  return out
}

function errorText(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'connection refused'
    case 'ECONNRESET':
      return 'connection reset'
    case 'EHOSTUNREACH':
      return 'host unreachable'
    case 'ENETUNREACH':
      return 'network unreachable'
    default:
      return error.code ? `${error.code.toLowerCase()}` : error.message
  }
}

/**
 * Probes one check against `host`: undefined when it passes, else why not, naming the check
 * ("http /healthz on 8080: status 503"). Never takes longer than the check's timeout, and an HTTP
 * probe reads at most MAX_HTTP_PROBE_BYTES of the answer.
 */
export function probe(host: string, check: HealthCheck): Promise<string | undefined> {
  const name = describeCheck(check)
  return new Promise((resolve) => {
    let socket: Socket | undefined
    let done = false
    const finish = (failure?: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket?.destroy()
      resolve(failure === undefined ? undefined : `${name}: ${failure}`)
    }
    const timer = setTimeout(() => finish(`no ${check.kind === 'http' ? 'answer' : 'connection'} within ${formatDuration(check.timeoutMs)}`), check.timeoutMs)
    socket = connect({ host, port: check.port })
    socket.on('error', (error: NodeJS.ErrnoException) => finish(errorText(error)))
    socket.on('connect', () => {
      if (check.kind === 'tcp') return finish()
      socket!.write(`GET ${check.path} HTTP/1.0\r\nHost: ${host.includes(':') ? `[${host}]` : host}:${check.port}\r\nUser-Agent: form-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`)
      let head = ''
      socket!.setEncoding('latin1')
      socket!.on('data', (chunk: string) => {
        head += chunk
        const eol = head.indexOf('\n')
        if (eol === -1 && head.length < MAX_HTTP_PROBE_BYTES) return
        const status = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head.slice(0, eol === -1 ? MAX_HTTP_PROBE_BYTES : eol))
        if (!status) return finish('the answer is not HTTP')
        const code = Number(status[1])
        finish(code >= 200 && code < 400 ? undefined : `status ${code}`)
      })
      socket!.on('end', () => finish(head ? 'the answer is not HTTP' : 'closed without an answer'))
    })
  })
}

/** Runs at most `max` tasks at once; the others wait in order. */
export class Limiter {
  private active = 0
  private readonly waiting: (() => void)[] = []

  constructor(readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r))
    else this.active++
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.active--
    }
  }
}

/**
 * The health state machine of one boot of a replica. `starting` until every check has passed once
 * (then `healthy`), or until a check failed `retries` times in a row outside the start period (then
 * `unhealthy`). An unhealthy replica turns healthy again when every check passes; a healthy one
 * stays healthy through fewer than `retries` failures in a row.
 */
export class HealthTracker {
  state: HealthState = 'starting'
  since: number
  reason?: string
  private readonly failures: number[]
  private readonly passing: boolean[]
  private readonly lastFailure: (string | undefined)[]

  constructor(
    readonly checks: HealthCheck[],
    private readonly bootedAt: number,
  ) {
    this.since = bootedAt
    this.failures = checks.map(() => 0)
    this.passing = checks.map(() => false)
    this.lastFailure = checks.map(() => undefined)
  }

  /** Records one probe's result; true when the state changed. */
  record(index: number, failure: string | undefined, now: number): boolean {
    const check = this.checks[index]
    if (failure === undefined) {
      this.failures[index] = 0
      this.passing[index] = true
    } else {
      this.passing[index] = false
      this.lastFailure[index] = failure
      // a check that never passed is still starting during the start period: its failures do not count
      if (now - this.bootedAt >= check.startPeriodMs || this.state !== 'starting') this.failures[index]++
    }
    const failing = this.failures.findIndex((n, i) => n >= this.checks[i].retries)
    let next = this.state
    let reason = this.reason
    if (failing !== -1) [next, reason] = ['unhealthy', this.lastFailure[failing]]
    else if (this.passing.every(Boolean)) [next, reason] = ['healthy', undefined]
    if (next === this.state && reason === this.reason) return false
    if (next !== this.state) this.since = now
    this.state = next
    this.reason = reason
    return true
  }
}

/** How long to wait before the restart after `restarts` earlier ones: 0, then 10 s doubling to 5 min. */
export function restartDelay(restarts: number): number {
  if (restarts <= 0) return 0
  return Math.min(RESTART_BACKOFF_MS.max, RESTART_BACKOFF_MS.first * 2 ** Math.min(restarts - 1, 20))
}

export interface MonitorOptions {
  host: string
  checks: HealthCheck[]
  limiter: Limiter
  /** when the guest's boot began (ms since the epoch): the start period counts from it */
  bootedAt: number
  /** called after every change of the tracker's state or reason */
  onChange: (tracker: HealthTracker) => void
  probe?: typeof probe
}

/**
 * Probes one replica's checks, each on its own interval, until stopped. The first probe of each
 * check runs at once; a probe that is still running when stopped is left to its timeout.
 */
export class HealthMonitor {
  readonly tracker: HealthTracker
  private readonly abort = new AbortController()

  constructor(private readonly o: MonitorOptions) {
    this.tracker = new HealthTracker(o.checks, o.bootedAt)
  }

  start(): void {
    for (const [i, check] of this.o.checks.entries()) void this.loop(i, check)
  }

  stop(): void {
    this.abort.abort()
  }

  get stopped(): boolean {
    return this.abort.signal.aborted
  }

  private async loop(index: number, check: HealthCheck): Promise<void> {
    const signal = this.abort.signal
    const run = this.o.probe ?? probe
    while (!signal.aborted) {
      const failure = await this.o.limiter.run(() => (signal.aborted ? Promise.resolve(undefined) : run(this.o.host, check)))
      if (signal.aborted) return
      if (this.tracker.record(index, failure, Date.now())) this.o.onChange(this.tracker)
      await sleepFor(check.intervalMs, undefined, { signal }).catch(() => {})
    }
  }
}
