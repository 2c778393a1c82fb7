import { join } from 'node:path'
import type { RunningService, ServiceContext } from '../../../core/plugin.js'
import type { PackConfig } from '../index.js'
import { liveImages as liveImagesOf } from '../lib/live-images.js'
import { serveBuilderApi } from './builder/api.js'
import { BuilderCache } from './builder/cache.js'
import { BuilderFiles } from './builder/files.js'
import { BuildJobs } from './builder/jobs.js'
import { buildRecordHandler } from './builder/records.js'

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
 * Each concern is a unit of ./builder/.
 */
export async function startBuilder(ctx: ServiceContext<PackConfig, 'state' | 'p2p'>): Promise<RunningService> {
  const config = ctx.config
  const state = ctx.use('state')
  const p2p = ctx.use('p2p')
  const log = ctx.log
  const me = state.address
  const root = join(ctx.paths.dataDir, 'builder')
  const files = await BuilderFiles.open(root, join(ctx.paths.cacheDir, 'builder'), config.builder !== 'off', log)
  const { dirs, contextFile, requestFile } = files

  const unavailable = config.builder === 'off' ? 'the builder is off ([pack] builder = "off")' : await builderUnavailable()
  if (unavailable) log.warn('this node does not build images', { reason: unavailable })

  // --- the cache: contexts, stored requests and the builder's own cache, evicted least recently used
  // (what the builds hold is asked only when the cache evicts, after `jobs` exists)
  const cache: BuilderCache = new BuilderCache(
    dirs,
    Math.round(config.cache_max_gb * 2 ** 30),
    {
      running: () => jobs.running.size,
      context: (path) => jobs.all().some((j) => contextFile(j.owner, j.stored.context) === path),
      request: (path) => jobs.all().some((j) => requestFile(j.owner, j.req.request) === path),
    },
    p2p.blobs,
    () => liveImagesOf(state, p2p.blobs, me),
    log,
  )
  const jobs = new BuildJobs({ state, me, config, files, cache, p2p, unavailable, log })
  await cache.refresh()

  const consider = buildRecordHandler({ state, me, jobs, files, unavailable, log })
  // requests made while the node was down, or interrupted by its stop, build now
  for (const r of await state.all('builds')) await consider(r).catch((error: Error) => log.warn('could not take a build request', { key: r.key, error: error.message }))
  // with the requests that wait queued (they hold their contexts), the cache goes back under its limit
  void cache.trim(cache.maxBytes).catch(() => {})
  ctx.health.loop('watch of builds', async () => {
    for await (const change of state.watch('builds', '', jobs.stopSignal)) await consider(change).catch((error: Error) => log.warn('could not take a build request', { key: change.key, error: error.message }))
  })

  serveBuilderApi(ctx.api, { state, me, config, files, cache, jobs, unavailable })

  return {
    handle: undefined,
    info: () => ({ queued: jobs.queue.length, running: jobs.running.size, ...(unavailable ? { unavailable } : {}), cache: { ...cache.current, maxBytes: cache.maxBytes } }),
    stop: () => jobs.stop(),
  }
}
