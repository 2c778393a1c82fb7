import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError, isFormError } from '../../../core/errors.js'
import { fileGrowth } from '../../../core/files.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { StateRecord } from '../../state/index.js'
import type { PackConfig } from '../index.js'
import { FINAL_STATES, parseBuildKey, parseBuildRequest, publicFailure, requestKey, statusKey, type BuildFailure, type BuildRequest, type BuildStatus, type PrivateFailure } from '../lib/builds.js'
import { markUsed } from '../lib/cache.js'
import { verifyContextArchive } from '../lib/context-archive.js'
import { BuilderCache } from './builder/cache.js'
import { BuilderFiles, REQUEST, type StoredRequest } from './builder/files.js'
import { liveImages as liveImagesOf } from '../lib/live-images.js'
import { buildId, parseFormfile } from '../lib/formfile/index.js'
import { HEX64 } from '../../../core/patterns.js'

interface Job {
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
/** the longest a log read waits for more (it holds a request and a watch that long) */
const MAX_LOG_WAIT_MS = 25_000
/** How often a base build's package counts are written to its status (a phase change is written at once). */
const BASE_PROGRESS_INTERVAL_MS = 3000

/** Why this node cannot build images, or undefined when it can. */
async function builderUnavailable(): Promise<string | undefined> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'the builder needs root (network namespaces for its build VMs)'
  const { execa } = await import('execa')
  for (const tool of ['mmdebstrap', 'mke2fs', 'tar', 'qemu-system-x86_64', 'qemu-img', 'ip', 'iptables']) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false })
    if (r.exitCode !== 0) return `${tool} is not installed`
  }
  return undefined
}

/**
 * The image builder (service `builder`): accepts uploaded contexts and Formfiles from their
 * owners, builds the requests in state (`builds/<owner>/<build>`) that name this node, one queue,
 * and reports each build's progress and result in `builds/<owner>/<build>/status/<node>`.
 */
export async function startBuilder(ctx: ServiceContext<PackConfig, 'state' | 'p2p'>): Promise<RunningService> {
  const config = ctx.config
  const state = ctx.use('state')
  const p2p = ctx.use('p2p')
  const log = ctx.log
  const me = state.address
  const root = join(ctx.paths.dataDir, 'builder')
  const files = await BuilderFiles.open(root, join(ctx.paths.cacheDir, 'builder'), config.builder !== 'off', log)
  const { dirs, ownerDir, contextFile, requestFile, logFile, failureFile, workDir, ownRequest } = files

  const unavailable = config.builder === 'off' ? 'the builder is off ([pack] builder = "off")' : await builderUnavailable()
  if (unavailable) log.warn('this node does not build images', { reason: unavailable })

  const queue: Job[] = []
  const running = new Map<string, Job>()
  const stopping = new AbortController()
  let writing = Promise.resolve()

  const writeStatus = (job: Job, patch: Partial<BuildStatus>) => {
    Object.assign(job.status, patch, { updatedAt: Date.now() })
    const snapshot = structuredClone(job.status)
    // in order, so a slow write never lands after a newer one
    writing = writing.then(() => state.put('builds', statusKey(job.owner, job.build, me), snapshot).then(() => undefined)).catch((error: Error) => log.warn('could not write a build status', { error: error.message }))
    return writing
  }

  // --- the cache: contexts, stored requests and the builder's own cache, evicted least recently used
  const jobs = () => [...running.values(), ...queue]
  const cache = new BuilderCache(
    dirs,
    Math.round(config.cache_max_gb * 2 ** 30),
    {
      running: () => running.size,
      context: (path) => jobs().some((j) => contextFile(j.owner, j.stored.context) === path),
      request: (path) => jobs().some((j) => requestFile(j.owner, j.req.request) === path),
    },
    p2p.blobs,
    () => liveImagesOf(state, p2p.blobs, me),
    log,
  )
  await cache.refresh()

  const pump = () => {
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

  const run = async (job: Job): Promise<void> => {
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
      const { buildImage } = await import('../lib/builder/build.js')
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

  const consider = async (record: StateRecord) => {
    const key = parseBuildKey(record.key)
    if (!key || key.node || record.author !== key.owner) return
    const parsed = parseBuildRequest(record.value)
    if (!('request' in parsed) || parsed.request.node !== me) return
    const req = parsed.request
    const id = requestKey(key.owner, key.build)
    const active = running.get(id) ?? queue.find((j) => requestKey(j.owner, j.build) === id)
    if (active && active.req.request === req.request) {
      if (req.cancel) active.abort.abort(new FormError('BUILD_CANCELLED', 'the build was cancelled by its owner'))
      if (req.cancel && queue.includes(active)) {
        queue.splice(queue.indexOf(active), 1)
        await writeStatus(active, { state: 'cancelled', finishedAt: Date.now() })
      }
      return
    }
    // a newer request replaces an older attempt of the same build
    if (active) {
      active.abort.abort(new FormError('BUILD_CANCELLED', 'replaced by a newer build of the same Formfile'))
      if (queue.includes(active)) queue.splice(queue.indexOf(active), 1)
    }
    const current = (await state.get('builds', statusKey(key.owner, key.build, me)))?.value as BuildStatus | undefined
    if (current?.request === req.request && FINAL_STATES.includes(current.state)) return
    const owned = req.cancel ? undefined : await ownRequest(key.owner, key.build, req)
    const stored = owned && 'formfile' in owned ? owned : undefined
    const job: Job = { owner: key.owner, build: key.build, req, stored: stored!, abort: new AbortController(), status: { request: req.request, name: req.name, state: 'queued', steps: [], queuedAt: Date.now(), updatedAt: Date.now() } }
    if (req.cancel) {
      await writeStatus(job, { state: 'cancelled', finishedAt: Date.now() })
      return
    }
    if (!stored) {
      log.warn('refused a build request', { owner: key.owner, build: key.build, code: (owned as BuildFailure).code })
      await writeStatus(job, { state: 'failed', error: owned as BuildFailure, finishedAt: Date.now() })
      return
    }
    if (unavailable) {
      await writeStatus(job, { state: 'failed', error: publicFailure('BUILDER_UNAVAILABLE', `this node cannot build images: ${unavailable}`), finishedAt: Date.now() })
      return
    }
    await writeStatus(job, { state: 'queued' })
    queue.push(job)
    pump()
  }

  // requests made while the node was down, or interrupted by its stop, build now
  for (const r of await state.all('builds')) await consider(r).catch((error: Error) => log.warn('could not take a build request', { key: r.key, error: error.message }))
  // with the requests that wait queued (they hold their contexts), the cache goes back under its limit
  void cache.trim(cache.maxBytes).catch(() => {})
  ctx.health.loop('watch of builds', async () => {
    for await (const change of state.watch('builds', '', stopping.signal)) await consider(change).catch((error: Error) => log.warn('could not take a build request', { key: change.key, error: error.message }))
  })

  /**
   * The build `build` of `caller` on this node, for reading its log or failure: another wallet's
   * build is refused (403), whether named by its owner or found under another owner.
   */
  const ownBuild = async (caller: string, body: { build?: unknown; owner?: unknown; request?: unknown }) => {
    if (typeof body.build !== 'string' || !HEX64.test(body.build)) throw new FormError('BUILD_BAD_REQUEST', 'expected {"build": "<build id>", "request"?: "<request id>", "offset"?: <bytes>}', { httpStatus: 400 })
    const build = body.build
    const notOwner = () =>
      new FormError('BUILD_NOT_OWNER', `build ${build} belongs to another wallet: only its owner may read its log and output`, { httpStatus: 403, hint: 'sign with the wallet that requested the build' })
    if (body.owner !== undefined && body.owner !== caller) throw notOwner()
    const status = (await state.get('builds', statusKey(caller, build, me)))?.value as BuildStatus | undefined
    const mine = status || existsSync(join(ownerDir(dirs.logs, caller), build))
    if (!mine) {
      for (const other of await readdir(dirs.logs).catch(() => [] as string[])) if (other !== caller && existsSync(join(dirs.logs, other, build))) throw notOwner()
      throw new FormError('BUILD_NOT_FOUND', `you have no build ${build} on this node`, { httpStatus: 404, hint: 'see `form pack status`; a build\'s log is on the node that built it' })
    }
    const request = typeof body.request === 'string' && REQUEST.test(body.request) ? body.request : status?.request
    if (!request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build} on this node`, { httpStatus: 404, hint: 'see `form pack status`' })
    return { build, status, request }
  }

  // The context, streamed to disk, checked (its unpacked size and file count too) before it is kept,
  // under its owner: a build may use only the contexts its owner uploaded.
  ctx.api.post(
    '/contexts',
    async (req) => {
      const upload = req.upload!
      try {
        await verifyContextArchive(upload.file, { maxBytes: config.max_context_unpacked_mb * 2 ** 20, maxFiles: config.max_context_files })
      } catch (error) {
        await rm(upload.file, { force: true })
        throw error
      }
      const target = contextFile(req.caller!, upload.sha256)
      await mkdir(join(target, '..'), { recursive: true, mode: 0o700 })
      await rename(upload.file, target)
      void cache.trim(cache.maxBytes).catch(() => {})
      return { context: upload.sha256, size: upload.size }
    },
    { auth: 'signed', uploadDir: dirs.uploads, maxBody: config.max_context_mb * 2 ** 20 },
  )
  // The Formfile stays on this node (it holds password hashes and ENV values), with the request id
  // the builder gives the caller: only that wallet's state record can start a build from it.
  ctx.api.post(
    '/builds',
    async (req) => {
      const body = req.json<{ context?: unknown; formfile?: unknown; lines?: unknown }>() ?? {}
      if (typeof body.context !== 'string' || !HEX64.test(body.context) || typeof body.formfile !== 'string') {
        throw new FormError('BUILD_BAD_REQUEST', 'expected {"context": "<sha256 of an uploaded context>", "formfile": "<text>"}', { httpStatus: 400 })
      }
      const context = body.context
      if (!existsSync(contextFile(req.caller!, context))) {
        const others = await readdir(dirs.contexts).catch(() => [] as string[])
        if (others.some((o) => o !== req.caller && existsSync(join(dirs.contexts, o, `${context}.tar.gz`)))) {
          throw new FormError('BUILD_CONTEXT_NOT_YOURS', `context ${context} was uploaded by another wallet; a build may use only contexts its own wallet uploaded`, {
            httpStatus: 403,
            hint: 'upload your own context (form pack build does)',
          })
        }
        throw new FormError('BUILD_NO_CONTEXT', `no context ${context} uploaded by ${req.caller} is on this node`, { httpStatus: 404, hint: 'upload it first (form pack build does)' })
      }
      if (unavailable) throw new FormError('BUILDER_UNAVAILABLE', `this node cannot build images: ${unavailable}`, { httpStatus: 503, hint: 'build on another node with --node' })
      const parsed = parseFormfile(body.formfile, { file: 'Formfile' })
      if (!parsed.formfile) {
        throw new FormError('BUILD_BAD_FORMFILE', `the Formfile is invalid: ${parsed.diagnostics.filter((d) => d.severity === 'error').map((d) => `line ${d.line}: ${d.message}`).join('; ')}`, { httpStatus: 400 })
      }
      // the client sends the normalized Formfile (password hashes, not passwords) and the line of
      // each step in the developer's own file, so records and errors name the lines they wrote
      const lines = Array.isArray(body.lines) && body.lines.length === parsed.formfile.steps.length && body.lines.every((l) => Number.isSafeInteger(l) && l > 0) ? (body.lines as number[]) : undefined
      const request = randomBytes(8).toString('hex')
      const build = buildId(req.caller!, parsed.formfile.name)
      const stored: StoredRequest = { build, name: parsed.formfile.name, context, formfile: body.formfile, ...(lines ? { lines } : {}), createdAt: Date.now() }
      const file = requestFile(req.caller!, request)
      await mkdir(join(file, '..'), { recursive: true, mode: 0o700 })
      await writeFile(file, JSON.stringify(stored), { mode: 0o600 })
      await markUsed(contextFile(req.caller!, context))
      return { request, name: parsed.formfile.name, buildId: build, node: me }
    },
    { auth: 'signed', maxBody: 1024 * 1024 },
  )
  // The build log can hold what the Formfile's commands print, secrets included: its owner alone reads it.
  // Answers {request, text, offset, done, state, size}: `text` from the asked offset (1 MiB at most), `offset`
  // where the next read starts, `size` the log's length when read (offset < size: more can be read at once).
  ctx.api.post(
    '/logs',
    async (req) => {
      const body = req.json<{ build?: unknown; owner?: unknown; request?: unknown; offset?: unknown; waitMs?: unknown }>() ?? {}
      const { build, request } = await ownBuild(req.caller!, body)
      const file = logFile(req.caller!, build, request)
      const read = async () => {
        const status = (await state.get('builds', statusKey(req.caller!, build, me)))?.value as BuildStatus | undefined
        const size = await stat(file).then((s) => s.size).catch(() => 0)
        const offset = Number.isSafeInteger(body.offset) && (body.offset as number) >= 0 ? Math.min(body.offset as number, size) : 0
        let text = ''
        if (size > offset && existsSync(file)) {
          const fh = await open(file, 'r')
          try {
            const length = Math.min(size - offset, 1024 * 1024)
            const buf = Buffer.alloc(length)
            await fh.read(buf, 0, length, offset)
            text = buf.toString('utf8')
          } finally {
            await fh.close()
          }
        }
        const done = status?.request === request && FINAL_STATES.includes(status.state)
        return { request, text, offset: offset + Buffer.byteLength(text), done: done && offset + Buffer.byteLength(text) >= size, state: status?.state, size }
      }
      const first = await read()
      // a follower (`form pack logs -f`) may ask to be answered when there is more, instead of asking again and again
      const waitMs = Number.isSafeInteger(body.waitMs) ? Math.min(Math.max(body.waitMs as number, 0), MAX_LOG_WAIT_MS) : 0
      if (first.text || first.done || !waitMs) return first
      const woken = new AbortController()
      const stop = AbortSignal.any([woken.signal, req.signal])
      const statusChange = (async () => {
        for await (const _ of state.watch('builds', statusKey(req.caller!, build, me), stop)) return
      })()
      await Promise.race([fileGrowth(file, first.size, waitMs, stop), statusChange])
      woken.abort()
      return read()
    },
    { auth: 'signed' },
  )
  // A failed build's whole error and the end of its failing step's output, for its owner.
  ctx.api.post(
    '/builds/failure',
    async (req) => {
      const body = req.json<{ build?: unknown; owner?: unknown; request?: unknown }>() ?? {}
      const { build, status, request } = await ownBuild(req.caller!, body)
      const failure = await readFile(failureFile(req.caller!, build, request), 'utf8').then((t) => JSON.parse(t) as PrivateFailure).catch(() => undefined)
      return { build, request, state: status?.request === request ? status.state : undefined, failure: failure ?? null }
    },
    { auth: 'signed' },
  )
  // Operator only (the local socket): removes what no build or queued request holds. The Debian
  // base stays unless `all` (it takes minutes to make again).
  ctx.api.post(
    '/prune',
    async (req) => {
      const body = req.json<{ all?: unknown }>() ?? {}
      const before = await cache.scan()
      const r = await cache.trim(0, body.all === true ? [] : ['base'])
      const removed: Record<string, { items: number; bytes: number }> = {}
      for (const i of r.removed) {
        const k = (removed[i.kind] ??= { items: 0, bytes: 0 })
        k.items++
        k.bytes += i.bytes
      }
      return { freed: r.freed, removed, inUse: r.inUse, before, after: r.after, running: running.size }
    },
    { auth: 'local' },
  )
  ctx.api.get('/builder', () => ({ unavailable, concurrency: config.builder_concurrency, queued: queue.length, running: [...running.values()].map((j) => ({ owner: j.owner, build: j.build, request: j.req.request })) }))

  return {
    handle: undefined,
    info: () => ({ queued: queue.length, running: running.size, ...(unavailable ? { unavailable } : {}), cache: { ...cache.current, maxBytes: cache.maxBytes } }),
    stop: async () => {
      stopping.abort()
      for (const j of running.values()) j.abort.abort(new FormError('BUILD_INTERRUPTED', 'the node is stopping'))
      // let the running builds record their end and clean up their work directories
      const deadline = Date.now() + 30_000
      while (running.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      await writing
    },
  }
}
