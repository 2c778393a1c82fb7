import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError, isFormError } from '../../../core/errors.js'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { P2PHandle } from '../../net/index.js'
import type { StateHandle, StateRecord } from '../../state/index.js'
import type { PackConfig } from '../index.js'
import { FINAL_STATES, parseBuildKey, parseBuildRequest, requestKey, statusKey, type BuildRequest, type BuildStatus } from '../lib/builds.js'
import { verifyContextArchive } from '../lib/context-archive.js'
import { buildId, parseFormfile } from '../lib/formfile/index.js'

interface Job {
  owner: string
  build: string
  req: BuildRequest
  abort: AbortController
  status: BuildStatus
}

const HEX64 = /^[0-9a-f]{64}$/

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

/** Kills the build VMs (QEMU with `-name form-build`, see lib/builder/vm.ts) still running in `workDir` after a crash. */
async function killOrphanBuilds(workDir: string, log: ServiceContext['log']): Promise<void> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue
    const args = (await readFile(`/proc/${pid}/cmdline`).catch(() => Buffer.alloc(0))).toString().split('\0')
    if (args.includes('form-build') && args.some((a) => a.startsWith(`${workDir}/`))) {
      log.warn('stopping a build command left by an earlier run of the node', { pid: Number(pid) })
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

/**
 * The image builder (service `builder`): accepts uploaded contexts and Formfiles from their
 * owners, builds the requests in state (`builds/<owner>/<build>`) that name this node, one queue,
 * and reports each build's progress and result in `builds/<owner>/<build>/status/<node>`.
 */
export async function startBuilder(ctx: ServiceContext): Promise<RunningService> {
  const config = ctx.config as PackConfig
  const state = ctx.use<StateHandle>('state')
  const p2p = ctx.use<P2PHandle>('p2p')
  const log = ctx.log
  const me = state.address
  const root = join(ctx.paths.dataDir, 'builder')
  const dirs = { contexts: join(root, 'contexts'), uploads: join(root, 'contexts', 'incoming'), work: join(root, 'work'), logs: join(root, 'logs'), cache: join(ctx.paths.cacheDir, 'builder') }
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true, mode: 0o700 })
  // A build the node was killed in: its build VM dies with the node's pipe (lib/builder/vm.ts), or is
  // stopped here; nothing of it is mounted on the host, so its work directory just goes.
  await killOrphanBuilds(dirs.work, log)
  // and the network namespaces and NAT rules of those build VMs (see lib/builder/net.ts)
  if (config.builder !== 'off') await (await import('../lib/builder/net.js')).removeStaleBuildNetworks(dirs.work).catch(() => {})
  for (const name of await readdir(dirs.work)) await rm(join(dirs.work, name), { recursive: true, force: true })

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

  const logFile = (owner: string, build: string, request: string) => join(dirs.logs, owner, build, `${request}.log`)

  const pump = () => {
    while (!unavailable && running.size < config.builder_concurrency && queue.length) {
      const job = queue.shift()!
      running.set(requestKey(job.owner, job.build), job)
      void run(job).finally(() => {
        running.delete(requestKey(job.owner, job.build))
        pump()
      })
    }
  }

  const run = async (job: Job): Promise<void> => {
    const work = join(dirs.work, job.req.request)
    const file = logFile(job.owner, job.build, job.req.request)
    await mkdir(join(file, '..'), { recursive: true, mode: 0o700 })
    const out = createWriteStream(file, { flags: 'a', mode: 0o600 })
    const started = Date.now()
    try {
      await writeStatus(job, { state: 'building', startedAt: started })
      const formfileText = await readFile(join(dirs.contexts, `${job.req.request}.Formfile`), 'utf8').catch(() => {
        throw new FormError('BUILD_NO_FORMFILE', `this node holds no Formfile for request ${job.req.request}`, { hint: 'run `form pack build` again: it uploads the context and Formfile first' })
      })
      const parsed = parseFormfile(formfileText, { file: 'Formfile' })
      if (!parsed.formfile) throw new FormError('BUILD_BAD_FORMFILE', `the Formfile is invalid: ${parsed.diagnostics.map((d) => d.message).join('; ')}`)
      const lines = await readFile(join(dirs.contexts, `${job.req.request}.lines.json`), 'utf8').then((t) => JSON.parse(t) as number[]).catch(() => undefined)
      if (lines?.length === parsed.formfile.steps.length) parsed.formfile.steps.forEach((step, i) => (step.line = lines[i]))
      const { buildImage } = await import('../lib/builder/build.js')
      const result = await buildImage({
        formfile: parsed.formfile,
        owner: job.owner,
        buildId: job.build,
        // the archive as uploaded: only the build VM unpacks it
        context: join(dirs.contexts, `${job.req.context}.tar.gz`),
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
          else if (e.type === 'base') void writeStatus(job, { base: { cached: e.cached, ms: Math.round(e.ms) } })
          else if (e.type === 'step' && e.status === 'running') void writeStatus(job, { current: { index: e.index, total: e.total, line: e.line, text: e.text } })
          else if (e.type === 'step') void writeStatus(job, { steps: [...job.status.steps, { line: e.line, text: e.text, cached: e.status === 'cached', ms: Math.round(e.ms ?? 0) }] })
        },
      })
      out.write(`--> image ${result.image}${result.reused ? ' (identical to an earlier build)' : ''}\n`)
      const m = result.manifest
      const users = (m.users ?? []).map((u) => (u as { username?: unknown }).username).filter((u): u is string => typeof u === 'string')
      await writeStatus(job, { state: 'built', image: result.image, reused: result.reused, resources: m.resources, users, expose: m.expose ?? [], phase: undefined, current: undefined, finishedAt: Date.now() })
      log.info('built an image', { owner: job.owner, build: job.build, image: result.image, ms: Date.now() - started })
      // announce the image and its parts so the nodes that will run it can fetch them
      for (const hash of [result.image, result.manifest.kernel.sha256, result.manifest.initrd?.sha256, result.manifest.disk.sha256]) {
        if (hash) void p2p.provide(hash).catch((error: Error) => log.debug('could not announce a blob yet', { hash, error: error.message }))
      }
    } catch (error) {
      const e = error as FormError & { step?: { line: number }; output?: string }
      if (stopping.signal.aborted) {
        // interrupted by the node's stop: queued again, so the next start builds it
        out.write('--> interrupted: the node is stopping; it builds again when it starts\n')
        await writeStatus(job, { state: 'queued', phase: undefined, current: undefined, steps: [] })
        return
      }
      const cancelled = job.abort.signal.aborted
      out.write(`--> ${cancelled ? 'cancelled' : `failed: ${e.message}`}\n`)
      const failure = cancelled
        ? undefined
        : {
            code: isFormError(error) ? e.code : 'BUILD_FAILED',
            message: e.message,
            line: e.step?.line,
            instruction: (e.details as { instruction?: string } | undefined)?.instruction,
            output: e.output?.slice(-4096),
          }
      await writeStatus(job, { state: cancelled ? 'cancelled' : 'failed', error: failure, finishedAt: Date.now() })
      if (!cancelled) log.warn('a build failed', { owner: job.owner, build: job.build, error: e.message })
    } finally {
      await new Promise((r) => out.end(r))
      await rm(work, { recursive: true, force: true })
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
    const job: Job = { owner: key.owner, build: key.build, req, abort: new AbortController(), status: { request: req.request, name: req.name, state: 'queued', steps: [], queuedAt: Date.now(), updatedAt: Date.now() } }
    if (req.cancel) {
      await writeStatus(job, { state: 'cancelled', finishedAt: Date.now() })
      return
    }
    if (unavailable) {
      await writeStatus(job, { state: 'failed', error: { code: 'BUILDER_UNAVAILABLE', message: `this node cannot build images: ${unavailable}` }, finishedAt: Date.now() })
      return
    }
    await writeStatus(job, { state: 'queued' })
    queue.push(job)
    pump()
  }

  // requests made while the node was down, or interrupted by its stop, build now
  for (const r of await state.store.all('builds')) await consider(r).catch((error: Error) => log.warn('could not take a build request', { key: r.key, error: error.message }))
  void (async () => {
    for await (const change of state.store.watch('builds', '', stopping.signal)) await consider(change).catch((error: Error) => log.warn('could not take a build request', { key: change.key, error: error.message }))
  })()

  // The context, streamed to disk; then the Formfile, which stays on this node (it holds password hashes).
  ctx.api.post(
    '/contexts',
    async (req) => {
      const upload = req.upload!
      await verifyContextArchive(upload.file)
      const target = join(dirs.contexts, `${upload.sha256}.tar.gz`)
      await rename(upload.file, target)
      await writeFile(`${target}.json`, JSON.stringify({ owner: req.caller, size: upload.size, uploadedAt: Date.now() }))
      return { context: upload.sha256, size: upload.size }
    },
    { auth: 'signed', uploadDir: dirs.uploads, maxBody: config.max_context_mb * 2 ** 20 },
  )
  ctx.api.post(
    '/builds',
    async (req) => {
      if (unavailable) throw new FormError('BUILDER_UNAVAILABLE', `this node cannot build images: ${unavailable}`, { httpStatus: 503, hint: 'build on another node with --node' })
      const body = req.json<{ context?: unknown; formfile?: unknown; lines?: unknown }>() ?? {}
      if (typeof body.context !== 'string' || !HEX64.test(body.context) || typeof body.formfile !== 'string') {
        throw new FormError('BUILD_BAD_REQUEST', 'expected {"context": "<sha256 of an uploaded context>", "formfile": "<text>"}', { httpStatus: 400 })
      }
      const meta = await readFile(join(dirs.contexts, `${body.context}.tar.gz.json`), 'utf8').then((t) => JSON.parse(t) as { owner: string }).catch(() => undefined)
      if (!meta || meta.owner !== req.caller) throw new FormError('BUILD_NO_CONTEXT', `no context ${body.context} uploaded by ${req.caller} is on this node`, { httpStatus: 404, hint: 'upload it first (form pack build does)' })
      const parsed = parseFormfile(body.formfile, { file: 'Formfile' })
      if (!parsed.formfile) {
        throw new FormError('BUILD_BAD_FORMFILE', `the Formfile is invalid: ${parsed.diagnostics.filter((d) => d.severity === 'error').map((d) => `line ${d.line}: ${d.message}`).join('; ')}`, { httpStatus: 400 })
      }
      // the client sends the normalized Formfile (password hashes, not passwords) and the line of
      // each step in the developer's own file, so records and errors name the lines they wrote
      const lines = Array.isArray(body.lines) && body.lines.length === parsed.formfile.steps.length && body.lines.every((l) => Number.isSafeInteger(l) && l > 0) ? (body.lines as number[]) : undefined
      const request = randomBytes(8).toString('hex')
      await writeFile(join(dirs.contexts, `${request}.Formfile`), body.formfile, { mode: 0o600 })
      if (lines) await writeFile(join(dirs.contexts, `${request}.lines.json`), JSON.stringify(lines))
      return { request, name: parsed.formfile.name, buildId: buildId(req.caller!, parsed.formfile.name), node: me }
    },
    { auth: 'signed', maxBody: 1024 * 1024 },
  )
  // The build log can hold what the Formfile's commands print, secrets included: its owner alone reads it.
  ctx.api.post(
    '/logs',
    async (req) => {
      const body = req.json<{ build?: unknown; request?: unknown; offset?: unknown }>() ?? {}
      if (typeof body.build !== 'string' || !HEX64.test(body.build)) throw new FormError('BUILD_BAD_REQUEST', 'expected {"build": "<build id>", "offset"?: <bytes>}', { httpStatus: 400 })
      const status = (await state.get('builds', statusKey(req.caller!, body.build, me)))?.value as BuildStatus | undefined
      const request = typeof body.request === 'string' && /^[0-9a-f]{8,64}$/.test(body.request) ? body.request : status?.request
      if (!request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${body.build} on this node`, { httpStatus: 404, hint: 'see `form pack status`' })
      const file = logFile(req.caller!, body.build, request)
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
      return { request, text, offset: offset + Buffer.byteLength(text), done: done && offset + Buffer.byteLength(text) >= size, state: status?.state }
    },
    { auth: 'signed' },
  )
  ctx.api.get('/builder', () => ({ unavailable, concurrency: config.builder_concurrency, queued: queue.length, running: [...running.values()].map((j) => ({ owner: j.owner, build: j.build, request: j.req.request })) }))

  return {
    handle: undefined,
    info: () => ({ queued: queue.length, running: running.size, ...(unavailable ? { unavailable } : {}) }),
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
