import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { fileGrowth } from '../../../../core/files.js'
import type { ApiRouter } from '../../../../core/daemon/router.js'
import { HEX64 } from '../../../../core/patterns.js'
import type { StateHandle } from '../../../state/index.js'
import type { PackConfig } from '../../index.js'
import { FINAL_STATES, REQUEST_ID, statusKey, type BuildStatus, type PrivateFailure } from '../../lib/builds.js'
import { markUsed } from '../../lib/cache.js'
import { verifyContextArchive } from '../../lib/context-archive.js'
import { buildId, parseFormfile } from '../../lib/formfile/index.js'
import type { BuilderCache } from './cache.js'
import { type BuilderFiles, type StoredRequest } from './files.js'
import type { BuildJobs } from './jobs.js'

/** the longest a log read waits for more (it holds a request and a watch that long) */
const MAX_LOG_WAIT_MS = 25_000

export interface BuilderApiDeps {
  state: Pick<StateHandle, 'get' | 'watch'>
  me: string
  config: Pick<PackConfig, 'builder_concurrency' | 'max_context_mb' | 'max_context_unpacked_mb' | 'max_context_files'>
  files: Pick<BuilderFiles, 'dirs' | 'ownerDir' | 'contextFile' | 'requestFile' | 'logFile' | 'failureFile'>
  cache: Pick<BuilderCache, 'maxBytes' | 'trim' | 'scan'>
  jobs: Pick<BuildJobs, 'queue' | 'running'>
  /** why this node cannot build, or undefined */
  unavailable: string | undefined
}

/**
 * The builder's API: owners upload contexts and Formfiles and read their own builds' logs and
 * failures; the operator prunes the cache; anyone sees the queue.
 */
export function serveBuilderApi(api: Pick<ApiRouter, 'get' | 'post'>, deps: BuilderApiDeps): void {
  const { state, me, config, cache, unavailable } = deps
  const { dirs, ownerDir, contextFile, requestFile, logFile, failureFile } = deps.files
  const { queue, running } = deps.jobs

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
    const request = typeof body.request === 'string' && REQUEST_ID.test(body.request) ? body.request : status?.request
    if (!request) throw new FormError('BUILD_NOT_FOUND', `you have no build ${build} on this node`, { httpStatus: 404, hint: 'see `form pack status`' })
    return { build, status, request }
  }

  // The context, streamed to disk, checked (its unpacked size and file count too) before it is kept,
  // under its owner: a build may use only the contexts its owner uploaded.
  api.post(
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
  api.post(
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
  api.post(
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
  api.post(
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
  api.post(
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
  api.get('/builder', () => ({ unavailable, concurrency: config.builder_concurrency, queued: queue.length, running: [...running.values()].map((j) => ({ owner: j.owner, build: j.build, request: j.req.request })) }))
}
