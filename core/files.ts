import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm, stat, watch } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormError, errnoCode } from './errors.js'

/**
 * Writes a file with mode 0600 atomically: a temporary file in the same directory, fsynced, then
 * renamed. Refuses to replace an existing file unless `overwrite`.
 */
export async function writeSecretFile(file: string, content: string | Uint8Array, overwrite = false): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  if (!overwrite) {
    try {
      await readFile(file)
      throw new FormError('FILE_EXISTS', `${file} already exists`, { hint: 'pass --force to replace it (the old key is lost unless you have a copy)' })
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
    }
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(content)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, file)
  } catch (error) {
    await rm(tmp, { force: true })
    throw error
  }
}

/**
 * Resolves once `file` is larger than `size`, after `ms`, or when `signal` aborts, whichever comes
 * first: what a follower of a growing file waits on instead of re-reading it on a timer (inotify,
 * through fs.watch). A file that does not exist yet is waited on for `ms`.
 */
export async function fileGrowth(file: string, size: number, ms: number, signal?: AbortSignal): Promise<void> {
  const done = new AbortController()
  const timer = setTimeout(() => done.abort(), ms)
  const stop = signal ? AbortSignal.any([signal, done.signal]) : done.signal
  try {
    // the watcher starts with the first next(), before the size is read: growth in between is not missed
    const changes = watch(file, { signal: stop })[Symbol.asyncIterator]()
    let next = changes.next()
    next.catch(() => {})
    for (;;) {
      if ((await stat(file)).size > size) return
      if ((await next).done) return
      next = changes.next()
      next.catch(() => {})
    }
  } catch (error) {
    if ((error as Error).name === 'AbortError') return
    if (errnoCode(error) !== 'ENOENT') throw error
    await new Promise<void>((resolve) => {
      if (stop.aborted) return resolve()
      stop.addEventListener('abort', () => resolve(), { once: true })
    })
  } finally {
    clearTimeout(timer)
    done.abort()
  }
}
