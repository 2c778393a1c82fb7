import { createWriteStream } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError, isFormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import type { P2PHandle } from '../../../net/index.js'
import type { StateHandle } from '../../../state/index.js'
import type { PackConfig } from '../../index.js'
import { publicFailure, requestKey, statusKey, type BuildRequest, type BuildStatus, type PrivateFailure } from '../../lib/builds.js'
import type { buildImage } from '../../lib/builder/build.js'
import { markUsed } from '../../lib/cache.js'
import { parseFormfile } from '../../lib/formfile/index.js'
import type { BuilderCache } from './cache.js'
import type { BuilderFiles, StoredRequest } from './files.js'

export interface Job {
  owner: string
  build: string
  req: BuildRequest
  /** what the owner sent this node for this request (see POST /builds) */
  stored: StoredRequest
  abort: AbortController
  status: BuildStatus
}

/** what a failed build's private record keeps of the step's output */
const MAX_FAILURE_OUTPUT = 64 * 1024
/** How often a base build's package counts are written to its status (a phase change is written at once). */
const BASE_PROGRESS_INTERVAL_MS = 3000

export interface BuildJobsDeps {
  state: Pick<StateHandle, 'put'>
  me: string
  config: Pick<PackConfig, 'builder_concurrency' | 'builder_suite' | 'builder_mirrors' | 'build_allow_cidrs' | 'build_vm_memory_mb'>
  files: Pick<BuilderFiles, 'dirs' | 'contextFile' | 'requestFile' | 'logFile' | 'failureFile' | 'workDir'>
  cache: Pick<BuilderCache, 'maxBytes' | 'trim' | 'keepImage'>
  p2p: Pick<P2PHandle, 'blobs' | 'provide'>
  /** why this node cannot build (then nothing queued runs), or undefined */
  unavailable: string | undefined
  log: Logger
  /** builds one image (tests pass their own; the real one drives a build VM) */
  buildImage?: typeof buildImage
}

/** The builds queued and running on this node: at most `builder_concurrency` at once, each in its own build VM, each reporting its status in state. */
export class BuildJobs {
  readonly queue: Job[] = []
  readonly running = new Map<string, Job>()
  private readonly stopping = new AbortController()
  private writing = Promise.resolve()

  constructor(private readonly deps: BuildJobsDeps) {}

  /** every build queued or running */
  readonly all = () => [...this.running.values(), ...this.queue]

  readonly writeStatus = (job: Job, patch: Partial<BuildStatus>) => {
    const { state, me, log } = this.deps
    Object.assign(job.status, patch, { updatedAt: Date.now() })
    const snapshot = structuredClone(job.status)
    // in order, so a slow write never lands after a newer one
    this.writing = this.writing.then(() => state.put('builds', statusKey(job.owner, job.build, me), snapshot).then(() => undefined)).catch((error: Error) => log.warn('could not write a build status', { error: error.message }))
    return this.writing
  }

  readonly pump = () => {
    const { unavailable, config, cache } = this.deps
    const { queue, running, run, pump } = this
    while (!unavailable && running.size < config.builder_concurrency && queue.length) {
      const job = queue.shift()!
      running.set(requestKey(job.owner, job.build), job)
      void run(job).finally(() => {
        running.delete(requestKey(job.owner, job.build))
        pump()
        if (!running.size) void cache.trim(cache.maxBytes).catch(() => {})
      })
    }
  }

  private readonly run = async (job: Job): Promise<void> => {
    const { config, p2p, cache, log } = this.deps
    const { dirs, contextFile, requestFile, logFile, failureFile, workDir } = this.deps.files
    const { writeStatus, stopping } = this
    const work = workDir(job.owner, job.req.request)
    const file = logFile(job.owner, job.build, job.req.request)
    await mkdir(join(file, '..'), { recursive: true, mode: 0o700 })
    // earlier attempts of this build: only the current one's log and failure are kept
    for (const name of await readdir(join(file, '..')).catch(() => [] as string[])) if (!name.startsWith(`${job.req.request}.`)) await rm(join(file, '..', name), { force: true })
    const out = createWriteStream(file, { flags: 'a', mode: 0o600 })
    const started = Date.now()
    let progressWritten = 0
    try {
      await writeStatus(job, { state: 'building', startedAt: started })
      const parsed = parseFormfile(job.stored.formfile, { file: 'Formfile' })
      if (!parsed.formfile) throw new FormError('BUILD_BAD_FORMFILE', `the Formfile is invalid: ${parsed.diagnostics.map((d) => d.message).join('; ')}`)
      const lines = job.stored.lines
      if (lines?.length === parsed.formfile.steps.length) parsed.formfile.steps.forEach((step, i) => (step.line = lines[i]))
      const context = contextFile(job.owner, job.stored.context)
      await markUsed(context)
      const buildImage = this.deps.buildImage ?? (await import('../../lib/builder/build.js')).buildImage
      const result = await buildImage({
        formfile: parsed.formfile,
        owner: job.owner,
        buildId: job.build,
        // the archive as uploaded: only the build VM unpacks it
        context,
        workDir: work,
        cacheDir: dirs.cache,
        blobs: p2p.blobs,
        suite: config.builder_suite,
        mirrors: config.builder_mirrors,
        allowCidrs: config.build_allow_cidrs,
        vmMemoryMb: config.build_vm_memory_mb,
        signal: job.abort.signal,
        onOutput: (chunk) => out.write(chunk),
        onEvent: (e) => {
          if (e.type === 'phase') void writeStatus(job, { phase: e.phase, current: undefined })
          else if (e.type === 'base') void writeStatus(job, { base: { cached: e.cached, ms: Math.round(e.ms) }, baseProgress: undefined })
          else if (e.type === 'base-progress') {
            // every status is a replicated write: a new phase at once, package counts at most every few seconds
            job.status.baseProgress = e.progress
            if (e.phaseChanged || Date.now() - progressWritten >= BASE_PROGRESS_INTERVAL_MS) {
              progressWritten = Date.now()
              void writeStatus(job, { baseProgress: e.progress })
            }
          }
          else if (e.type === 'step' && e.status === 'running') void writeStatus(job, { current: { index: e.index, total: e.total, line: e.line, text: e.text } })
          else if (e.type === 'step') void writeStatus(job, { steps: [...job.status.steps, { line: e.line, text: e.text, cached: e.status === 'cached', ms: Math.round(e.ms ?? 0) }] })
        },
      })
      out.write(`--> image ${result.image}${result.reused ? ' (identical to an earlier build)' : ''}\n`)
      const m = result.manifest
      const users = (m.users ?? []).map((u) => (u as { username?: unknown }).username).filter((u): u is string => typeof u === 'string')
      await writeStatus(job, { state: 'built', image: result.image, reused: result.reused, resources: m.resources, users, expose: m.expose ?? [], phase: undefined, current: undefined, finishedAt: Date.now() })
      log.info('built an image', { owner: job.owner, build: job.build, image: result.image, ms: Date.now() - started })
      await cache.keepImage(result.image).catch((error: Error) => log.warn('could not record the image in the builder cache', { image: result.image, error: error.message }))
      // announce the image and its parts so the nodes that will run it can fetch them
      for (const hash of [result.image, result.manifest.kernel.sha256, result.manifest.initrd?.sha256, result.manifest.disk.sha256]) {
        if (hash) void p2p.provide(hash).catch((error: Error) => log.debug('could not announce a blob yet', { hash, error: error.message }))
      }
    } catch (error) {
      const e = error as FormError & { step?: { line: number }; output?: string }
      if (stopping.signal.aborted) {
        // interrupted by the node's stop: queued again, so the next start builds it
        out.write('--> interrupted: the node is stopping; it builds again when it starts\n')
        await writeStatus(job, { state: 'queued', phase: undefined, current: undefined, baseProgress: undefined, steps: [] })
        return
      }
      const cancelled = job.abort.signal.aborted
      out.write(`--> ${cancelled ? 'cancelled' : `failed: ${e.message}`}\n`)
      // state gets a code, one short line and the Formfile line; the output (which can hold the
      // owner's secrets) stays here, for the owner to fetch (POST /builds/failure)
      const failure = cancelled ? undefined : publicFailure(isFormError(error) ? e.code : 'BUILD_FAILED', e.message ?? String(error), { line: e.step?.line, instruction: (e.details as { instruction?: string } | undefined)?.instruction })
      if (failure) {
        const detail: PrivateFailure = { ...failure, request: job.req.request, detail: e.message ?? String(error), output: (e.output ?? '').slice(-MAX_FAILURE_OUTPUT) }
        await writeFile(failureFile(job.owner, job.build, job.req.request), JSON.stringify(detail), { mode: 0o600 })
      }
      await writeStatus(job, { state: cancelled ? 'cancelled' : 'failed', error: failure, finishedAt: Date.now() })
      if (failure) log.warn('a build failed', { owner: job.owner, build: job.build, code: failure.code, line: failure.line })
    } finally {
      await new Promise((r) => out.end(r))
      await rm(work, { recursive: true, force: true })
      // the request has ended for good (an interrupted one stays queued for the next start)
      if (!stopping.signal.aborted) await rm(requestFile(job.owner, job.req.request), { force: true })
    }
  }

  /** Interrupts the running builds (they stay queued in state for the next start) and waits for their status writes. */
  readonly stop = async () => {
    const { stopping, running } = this
    stopping.abort()
    for (const j of running.values()) j.abort.abort(new FormError('BUILD_INTERRUPTED', 'the node is stopping'))
    // let the running builds record their end and clean up their work directories
    const deadline = Date.now() + 30_000
    while (running.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    await this.writing
  }

  /** the signal of the node's stop (the watch of build requests ends with it) */
  get stopSignal(): AbortSignal {
    return this.stopping.signal
  }
}
