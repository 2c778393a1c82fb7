import type { ByteBudget } from '../../lib/p2p/framing.js'

/**
 * Gives memory back after strangers' half-sent frames are dropped. Their buffers are garbage then,
 * but an idle node allocates too little for V8 to collect its old generation, so the process kept
 * ~190 MiB after ten such connections had closed. When the frame bytes held fall from over 32 MiB
 * to under a quarter of that peak, one full collection runs (at most every 10 s). The collection
 * frees the buffers into glibc's heap, which keeps the pages (RSS stayed 230-370 MiB over its
 * baseline after the 10- and 100-connection attacks), so glibc is then asked to return free pages
 * to the system (`malloc_trim`, through koffi: Node has no binding for it).
 */
export async function memoryReleaser(budget: ByteBudget, log: (message: string, level?: 'info' | 'warn') => void): Promise<{ stop(): void }> {
  const { setFlagsFromString } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const trim = await mallocTrim(log)
  let peak = 0
  let trimTimer: NodeJS.Timeout | undefined
  const timer = setInterval(() => {
    // a burst that came and went between two looks counts too (the 100-connection case did, leaving 496 MiB)
    peak = Math.max(peak, budget.takeRecentPeak())
    if (peak > 32 * 2 ** 20 && budget.bytes < peak / 4) {
      peak = budget.bytes
      gc()
      // V8 frees collected buffers' memory on a background thread shortly after the collection
      if (trim)
        trimTimer = setTimeout(() => {
          const before = process.memoryUsage.rss()
          trim()
          log(`dropped frames' memory given back: RSS ${mib(before)} -> ${mib(process.memoryUsage.rss())} MiB`, 'info')
        }, 1000).unref()
    }
  }, 10_000)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      clearTimeout(trimTimer)
    },
  }
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
