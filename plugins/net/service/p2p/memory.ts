import type { ByteBudget } from '../../lib/p2p/framing.js'

/** frames held above this, then mostly dropped, are worth a full collection; below it V8 copes alone */
const RELEASE_ABOVE = 32 * 2 ** 20

/**
 * Decides when dropped frames' memory is worth a full collection: the bytes held rose over 32 MiB
 * (even between two looks) and have since fallen under a quarter of that peak. After a release the
 * peak starts again from what is held, so one burst is released once.
 */
export class ReleaseRule {
  private peak = 0

  constructor(private readonly budget: Pick<ByteBudget, 'bytes' | 'takeRecentPeak'>) {}

  /** One look at the budget: true when a collection is due now. */
  due(): boolean {
    // a burst that came and went between two looks counts too (the 100-connection case did, leaving 496 MiB)
    this.peak = Math.max(this.peak, this.budget.takeRecentPeak())
    if (this.peak <= RELEASE_ABOVE || this.budget.bytes >= this.peak / 4) return false
    this.peak = this.budget.bytes
    return true
  }
}

/** What releasing memory calls; tests pass their own to see the calls without a real collection. */
export interface Releasers {
  gc: () => void
  /** undefined where the C library cannot be asked (musl, no koffi) */
  trim: (() => void) | undefined
  /** between two looks at the budget (10 s, so at most one full collection per 10 s) */
  everyMs?: number
}

/**
 * Gives memory back after strangers' half-sent frames are dropped. Their buffers are garbage then,
 * but an idle node allocates too little for V8 to collect its old generation, so the process kept
 * ~190 MiB after ten such connections had closed. When `ReleaseRule` says so, one full collection
 * runs. The collection frees the buffers into glibc's heap, which keeps the pages (RSS stayed
 * 230-370 MiB over its baseline after the 10- and 100-connection attacks), so glibc is then asked
 * to return free pages to the system (`malloc_trim`, through koffi: Node has no binding for it).
 */
export async function memoryReleaser(budget: ByteBudget, log: (message: string, level?: 'info' | 'warn') => void, releasers?: Releasers): Promise<{ stop(): void }> {
  const { gc, trim, everyMs = 10_000 } = releasers ?? (await realReleasers(log))
  const rule = new ReleaseRule(budget)
  let trimTimer: NodeJS.Timeout | undefined
  const timer = setInterval(() => {
    if (!rule.due()) return
    gc()
    // V8 frees collected buffers' memory on a background thread shortly after the collection
    if (trim)
      trimTimer = setTimeout(() => {
        const before = process.memoryUsage.rss()
        trim()
        log(`dropped frames' memory given back: RSS ${mib(before)} -> ${mib(process.memoryUsage.rss())} MiB`, 'info')
      }, 1000).unref()
  }, everyMs)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      clearTimeout(trimTimer)
    },
  }
}

async function realReleasers(log: (message: string) => void): Promise<Releasers> {
  const { setFlagsFromString } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  setFlagsFromString('--expose-gc')
  return { gc: runInNewContext('gc') as () => void, trim: await mallocTrim(log) }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20)

/** glibc's `malloc_trim(0)`, or undefined where the C library has none (musl) or koffi cannot load. */
async function mallocTrim(log: (message: string) => void): Promise<(() => void) | undefined> {
  try {
    const { default: koffi } = await import('koffi')
    const trim = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number
    return () => void trim(0)
  } catch (error) {
    log(`memory freed after dropped frames stays with the allocator (no glibc malloc_trim: ${(error as Error).message})`)
    return undefined
  }
}
