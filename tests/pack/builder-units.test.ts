import t from 'tap'
import { existsSync, statSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ApiHandler, ApiRequest } from '../../core/daemon/router.js'
import { FormError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { StateRecord } from '../../plugins/state/index.js'
import { statusKey, type BuildStatus } from '../../plugins/pack/lib/builds.js'
import type { BuildOptions, BuildResult } from '../../plugins/pack/lib/builder/build.js'
import { serveBuilderApi } from '../../plugins/pack/service/builder/api.js'
import { BuilderFiles } from '../../plugins/pack/service/builder/files.js'
import { BuildJobs, type BuildJobsDeps } from '../../plugins/pack/service/builder/jobs.js'
import { buildRecordHandler } from '../../plugins/pack/service/builder/records.js'

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
const ME = '0x' + '11'.repeat(20)
const OTHER_NODE = '0x' + '22'.repeat(20)
const ALICE = '0x' + 'a1'.repeat(20)
const BOB = '0x' + 'b2'.repeat(20)
const CONTEXT = 'c'.repeat(64)
const FORMFILE = 'NAME web\nUSER username:ada lock_passwd:true\n'
const config = {
  builder_concurrency: 1,
  builder_suite: 'bookworm',
  builder_mirrors: [],
  build_allow_cidrs: [],
  build_vm_memory_mb: 1024,
  max_context_mb: 1,
  max_context_unpacked_mb: 1,
  max_context_files: 10,
}

/** the part of state the builder units use: records in a map, every status write kept in order */
function fakeState() {
  const records = new Map<string, StateRecord>()
  const writes: { key: string; value: BuildStatus }[] = []
  return {
    records,
    writes,
    put: async (collection: string, key: string, value: unknown) => {
      const record = { collection, key, value, author: ME, deleted: false } as StateRecord
      records.set(`${collection}/${key}`, record)
      writes.push({ key, value: value as BuildStatus })
      return record
    },
    get: async (collection: string, key: string) => records.get(`${collection}/${key}`),
    async *watch(): AsyncGenerator<StateRecord> {},
    /** the states written for one build, in order */
    states: (owner: string, build: string) => writes.filter((w) => w.key === statusKey(owner, build, ME)).map((w) => w.value.state),
  }
}

/** a build that ends when the test says so */
function fakeBuilds() {
  const calls: { options: BuildOptions; end(result?: Error): void }[] = []
  const buildImage = (options: BuildOptions) =>
    new Promise<BuildResult>((resolve, reject) => {
      options.signal?.addEventListener('abort', () => reject(options.signal!.reason))
      calls.push({
        options,
        end: (error) => (error ? reject(error) : resolve({ image: `image-of-${options.buildId.slice(0, 4)}`, reused: false, steps: [], manifest: { kernel: { sha256: 'k' }, disk: { sha256: 'd' }, users: [{ username: 'ada' }], expose: [80], resources: {} } } as unknown as BuildResult)),
      })
    })
  return { calls, buildImage: buildImage as unknown as NonNullable<BuildJobsDeps['buildImage']> }
}

function fakeApi() {
  const routes = new Map<string, ApiHandler>()
  const api = { get: (path: string, h: ApiHandler) => void routes.set(`GET ${path}`, h), post: (path: string, h: ApiHandler) => void routes.set(`POST ${path}`, h) }
  const call = (route: string, caller: string, body?: unknown, extra: Partial<ApiRequest> = {}) =>
    routes.get(route)!({ caller, json: () => body, signal: new AbortController().signal, ...extra } as unknown as ApiRequest) as Promise<Record<string, unknown>>
  return { api, call }
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
}

/** the builder's units wired as startBuilder wires them, over fakes of state, p2p, the cache and the build VM */
async function builder(dir: string, options: { unavailable?: string; concurrency?: number } = {}) {
  const state = fakeState()
  const files = await BuilderFiles.open(join(dir, 'builder'), join(dir, 'cache'), false, log)
  const kept: string[] = []
  const provided: string[] = []
  let trims = 0
  const cache = { maxBytes: 1, trim: async () => (trims++, { freed: 0, removed: [], inUse: 0, after: { bytes: 0, items: 0, kinds: {} } }), keepImage: async (image: string) => void kept.push(image), scan: async () => ({ bytes: 0, items: 0, kinds: {} }) }
  const p2p = { blobs: {} as BuildJobsDeps['p2p']['blobs'], provide: async (hash: string) => void provided.push(hash) }
  const builds = fakeBuilds()
  const unavailable = options.unavailable
  const cfg = { ...config, builder_concurrency: options.concurrency ?? 1 }
  const jobs = new BuildJobs({ state, me: ME, config: cfg, files, cache: cache as unknown as BuildJobsDeps['cache'], p2p, unavailable, log, buildImage: builds.buildImage })
  const consider = buildRecordHandler({ state, me: ME, jobs, files, unavailable, log })
  const api = fakeApi()
  serveBuilderApi(api.api, { state, me: ME, config: cfg, files, cache: cache as unknown as Parameters<typeof serveBuilderApi>[1]['cache'], jobs, unavailable })
  /** what `form pack build` does: the context on disk (as an upload would leave it), POST /builds, then the request record in state */
  const request = async (owner: string, node = ME) => {
    await mkdir(join(files.dirs.contexts, owner), { recursive: true })
    await writeFile(files.contextFile(owner, CONTEXT), 'context')
    const made = await api.call('POST /builds', owner, { context: CONTEXT, formfile: FORMFILE })
    const record = { collection: 'builds', key: `${owner}/${made.buildId}`, author: owner, value: { node, context: CONTEXT, request: made.request, name: 'web', requestedAt: 1 } } as StateRecord
    return { build: made.buildId as string, request: made.request as string, record }
  }
  /** Alice's build and Bob's requested at concurrency 1: Alice's is running once this returns */
  const aliceRunsBobWaits = async () => {
    const first = await request(ALICE)
    const second = await request(BOB)
    await consider(first.record)
    await consider(second.record)
    await until(() => builds.calls.length > 0)
    return { first, second }
  }
  return { state, files, jobs, consider, api, builds, kept, provided, request, aliceRunsBobWaits, trims: () => trims }
}

t.test('build jobs: one build at a time at builder_concurrency 1; the next starts when the first ends', async (t) => {
  const b = await builder(t.testdir())
  const { first, second } = await b.aliceRunsBobWaits()
  t.equal(b.builds.calls.length, 1, 'the second waits')
  t.match(await b.api.call('GET /builder', ME), { concurrency: 1, queued: 1, running: [{ owner: ALICE, build: first.build, request: first.request }] })
  t.same(b.state.states(BOB, second.build), ['queued'])
  t.equal(b.builds.calls[0].options.owner, ALICE)
  b.builds.calls[0].options.onOutput?.('step output\n')
  b.builds.calls[0].end()
  await until(() => b.builds.calls.length > 1)
  t.equal(b.builds.calls.length, 2, 'the second starts once the first has ended')
  t.equal(b.builds.calls[1].options.owner, BOB)
  t.same(b.state.states(ALICE, first.build), ['queued', 'building', 'built'])
  t.match(b.state.records.get(`builds/${statusKey(ALICE, first.build, ME)}`)?.value, { state: 'built', image: 'image-of-' + first.build.slice(0, 4), users: ['ada'], expose: [80] })
  t.same(b.kept, ['image-of-' + first.build.slice(0, 4)], 'the image is kept in the builder cache')
  t.same(b.provided, ['image-of-' + first.build.slice(0, 4), 'k', 'd'], 'the image and its parts are announced')
  t.notOk(existsSync(b.files.requestFile(ALICE, first.request)), 'a finished request is removed')
  t.match(await readFile(b.files.logFile(ALICE, first.build, first.request), 'utf8'), /step output\n--> image image-of-/)
  b.builds.calls[1].end()
  await until(() => b.jobs.running.size === 0)
  t.ok(b.trims() > 0, 'when nothing runs, the cache goes back under its limit')

  const two = await builder(t.testdir(), { concurrency: 2 })
  await two.consider((await two.request(ALICE)).record)
  await two.consider((await two.request(BOB)).record)
  await until(() => two.builds.calls.length > 1)
  t.equal(two.builds.calls.length, 2, 'builder_concurrency 2: both at once')
  for (const c of two.builds.calls) c.end()
  await until(() => two.jobs.running.size === 0)
})

t.test('build jobs: a failed build tells state its code and line, and keeps the output for its owner alone', async (t) => {
  const b = await builder(t.testdir())
  const r = await b.request(ALICE)
  await b.consider(r.record)
  await until(() => b.builds.calls.length > 0)
  b.builds.calls[0].end(Object.assign(new FormError('BUILD_STEP_FAILED', 'RUN exited with 2'), { step: { line: 3 }, output: 'secret=hunter2\n' }))
  await until(() => b.jobs.running.size === 0)
  const status = b.state.records.get(`builds/${statusKey(ALICE, r.build, ME)}`)?.value as BuildStatus
  t.match(status, { state: 'failed', error: { code: 'BUILD_STEP_FAILED', line: 3 } })
  t.notMatch(JSON.stringify(status), /hunter2/, 'the output is not replicated')
  const failure = await b.api.call('POST /builds/failure', ALICE, { build: r.build })
  t.match(failure, { build: r.build, request: r.request, state: 'failed', failure: { code: 'BUILD_STEP_FAILED', output: 'secret=hunter2\n' } })
  await t.rejects(b.api.call('POST /builds/failure', BOB, { build: r.build }), { code: 'BUILD_NOT_OWNER', httpStatus: 403 }, 'another wallet may not read it')
})

t.test('build jobs: the node stopping interrupts a build: it is queued again in state and its request stays for the next start', async (t) => {
  const b = await builder(t.testdir())
  const r = await b.request(ALICE)
  await b.consider(r.record)
  await until(() => b.builds.calls.length > 0)
  await b.jobs.stop()
  t.same(b.state.states(ALICE, r.build), ['queued', 'building', 'queued'])
  t.ok(existsSync(b.files.requestFile(ALICE, r.request)), 'the request is kept')
  t.ok(b.jobs.stopSignal.aborted)
})

t.test('build records: only requests for this node, written by their owner, are built; others are refused with a reason', async (t) => {
  const b = await builder(t.testdir())
  const r = await b.request(ALICE)
  await b.consider({ ...r.record, value: { ...(r.record.value as object), node: OTHER_NODE } })
  await b.consider({ ...r.record, author: BOB })
  await b.consider({ ...r.record, key: statusKey(ALICE, r.build, ME) })
  await b.consider({ ...r.record, value: { ...(r.record.value as object), request: 'ab'.repeat(16) } })
  t.equal(b.state.writes.length, 0, 'a request for another node, one written by another wallet, a status record and a request id the builder never gives out (32 hex digits) are ignored')
  t.equal(b.jobs.queue.length + b.jobs.running.size, 0)

  // Bob names Alice's request id under his own build: he never made it here
  const stolen = { ...r.record, key: `${BOB}/${r.build}`, author: BOB }
  await b.consider(stolen)
  t.match(b.state.records.get(`builds/${statusKey(BOB, r.build, ME)}`)?.value, { state: 'failed', error: { code: 'BUILD_UNKNOWN_REQUEST' } })
  t.equal(b.builds.calls.length, 0)

  const off = await builder(t.testdir(), { unavailable: 'qemu-img is not installed' })
  const o = await off.request(ALICE).catch((error: FormError) => error)
  t.match(o, { code: 'BUILDER_UNAVAILABLE', httpStatus: 503 }, 'a node that cannot build says so at POST /builds')
})

t.test('build records: a cancel ends a queued build; a newer request replaces an older one; a finished one is not built again', async (t) => {
  const b = await builder(t.testdir())
  const { first, second } = await b.aliceRunsBobWaits()
  await b.consider({ ...second.record, value: { ...(second.record.value as object), cancel: true } })
  t.equal(b.jobs.queue.length, 0, 'the cancelled build left the queue')
  t.same(b.state.states(BOB, second.build), ['queued', 'cancelled'])

  const again = await b.request(ALICE)
  t.equal(again.build, first.build, 'the same Formfile: the same build')
  await b.consider(again.record)
  await until(() => b.jobs.running.size === 0 || b.builds.calls.length > 1)
  t.ok(b.builds.calls[0].options.signal?.aborted, 'the older attempt is aborted')
  t.match(b.builds.calls[0].options.signal?.reason, { code: 'BUILD_CANCELLED', message: /replaced by a newer build/ })
  await until(() => b.builds.calls.length > 1)
  t.equal(b.builds.calls[1].options.workDir, b.files.workDir(ALICE, again.request), 'the newer request builds')
  b.builds.calls[1].end()
  await until(() => b.jobs.running.size === 0)
  const builds = b.builds.calls.length
  const writes = b.state.writes.length
  await b.consider(again.record)
  t.equal(b.builds.calls.length, builds, 'a request already built is not built again (as on a restart)')
  t.equal(b.state.writes.length, writes, 'nor is its status touched')
  t.equal(b.jobs.queue.length, 0)
})

t.test('builder api: POST /builds takes only the caller\'s own uploaded context and a valid Formfile', async (t) => {
  const b = await builder(t.testdir())
  await t.rejects(b.api.call('POST /builds', ALICE, { context: 'nope', formfile: FORMFILE }), { code: 'BUILD_BAD_REQUEST', httpStatus: 400 })
  await t.rejects(b.api.call('POST /builds', ALICE, { context: CONTEXT }), { code: 'BUILD_BAD_REQUEST', httpStatus: 400 }, 'no Formfile')
  await t.rejects(b.api.call('POST /builds', ALICE, { context: CONTEXT, formfile: FORMFILE }), { code: 'BUILD_NO_CONTEXT', httpStatus: 404 })
  await mkdir(join(b.files.dirs.contexts, BOB), { recursive: true })
  await writeFile(b.files.contextFile(BOB, CONTEXT), 'bob')
  await t.rejects(b.api.call('POST /builds', ALICE, { context: CONTEXT, formfile: FORMFILE }), { code: 'BUILD_CONTEXT_NOT_YOURS', httpStatus: 403 }, 'Bob\'s context is not Alice\'s to build')
  await mkdir(join(b.files.dirs.contexts, ALICE), { recursive: true })
  await writeFile(b.files.contextFile(ALICE, CONTEXT), 'alice')
  await t.rejects(b.api.call('POST /builds', ALICE, { context: CONTEXT, formfile: 'NAME web\nFROBNICATE\n' }), { code: 'BUILD_BAD_FORMFILE', httpStatus: 400, message: /line 2/ })
  const made = await b.api.call('POST /builds', ALICE, { context: CONTEXT, formfile: FORMFILE, lines: [7] })
  t.match(made, { name: 'web', node: ME, request: /^[0-9a-f]{16}$/ })
  const stored = JSON.parse(await readFile(b.files.requestFile(ALICE, made.request as string), 'utf8'))
  t.match(stored, { build: made.buildId, context: CONTEXT, formfile: FORMFILE, lines: [7] }, 'the lines are kept when there is one per step')
  const other = await b.api.call('POST /builds', ALICE, { context: CONTEXT, formfile: FORMFILE, lines: [1, 2, 3] })
  t.notOk('lines' in JSON.parse(await readFile(b.files.requestFile(ALICE, other.request as string), 'utf8')), 'not when they do not match the steps')

  const upload = join(b.files.dirs.uploads, 'upload')
  await writeFile(upload, 'not a tar.gz')
  await t.rejects(b.api.call('POST /contexts', ALICE, undefined, { upload: { file: upload, sha256: CONTEXT, size: 12 } }))
  t.notOk(existsSync(upload), 'a context that fails its check is not kept')
})

t.test('builder api: POST /logs reads the caller\'s own build from an offset, and refuses another wallet\'s', async (t) => {
  const b = await builder(t.testdir())
  const r = await b.request(ALICE)
  await b.consider(r.record)
  await until(() => b.builds.calls.length > 0)
  b.builds.calls[0].options.onOutput?.('one\ntwo\n')
  // the log is written through a stream: read once both lines are on disk
  await until(() => existsSync(b.files.logFile(ALICE, r.build, r.request)) && statSync(b.files.logFile(ALICE, r.build, r.request)).size === 8)
  const part = await b.api.call('POST /logs', ALICE, { build: r.build, offset: 4 })
  t.same(part, { request: r.request, text: 'two\n', offset: 8, done: false, state: 'building', size: 8 }, 'from the offset asked; the next read starts at 8')
  await t.rejects(b.api.call('POST /logs', BOB, { build: r.build }), { code: 'BUILD_NOT_OWNER', httpStatus: 403 }, 'found under another owner')
  await t.rejects(b.api.call('POST /logs', ALICE, { build: 'e'.repeat(64) }), { code: 'BUILD_NOT_FOUND', httpStatus: 404 })
  await t.rejects(b.api.call('POST /logs', ALICE, { build: '../x' }), { code: 'BUILD_BAD_REQUEST', httpStatus: 400 })
  b.builds.calls[0].end()
  await until(() => b.jobs.running.size === 0)
  const all = await b.api.call('POST /logs', ALICE, { build: r.build })
  t.match(all, { text: /^one\ntwo\n--> image /, done: true, state: 'built' }, 'done once the build has ended and all is read')
})
