import { FormError } from '../../../core/errors.js'
import { listContextFiles, type ContextListing } from './formfile/index.js'

/**
 * The build context on the wire: a gzipped tarball of regular files and directories, paths
 * relative to the context. The client refuses what must not be sent; the builder node checks
 * again, since the upload is untrusted input there.
 */

export interface PackedContext {
  listing: ContextListing
  file: string
}

/** Lists the context and refuses what cannot be sent, before anything is uploaded. */
export async function checkContext(dir: string, maxBytes: number): Promise<ContextListing> {
  const listing = await listContextFiles(dir)
  if (listing.symlinks.length) {
    throw new FormError('CONTEXT_SYMLINK', `the build context ${dir} holds symbolic links, which are never sent: ${listing.symlinks.slice(0, 5).join(', ')}${listing.symlinks.length > 5 ? ', ...' : ''}`, {
      hint: 'replace them with the files they point to, or list them in .formignore',
    })
  }
  const escaping = listing.files.find((f) => f.path.split('/').includes('..') || f.path.startsWith('/'))
  if (escaping) throw new FormError('CONTEXT_ESCAPES', `the context path "${escaping.path}" leaves the build context`, { hint: 'rename it' })
  if (listing.totalBytes > maxBytes) {
    throw new FormError('CONTEXT_TOO_LARGE', `the build context is ${(listing.totalBytes / 2 ** 20).toFixed(1)} MiB; the limit is ${(maxBytes / 2 ** 20).toFixed(0)} MiB`, {
      hint: 'exclude what the image does not need in .formignore, or raise --max-context-mb',
    })
  }
  return listing
}

export async function packContext(dir: string, listing: ContextListing, file: string): Promise<void> {
  const tar = await import('tar')
  // portable: no owner names, uids or host-specific metadata leave this machine
  await tar.c({ gzip: true, cwd: dir, file, portable: true, noDirRecurse: true }, listing.files.map((f) => f.path))
}

const ENTRY_PROBLEM = (path: string, type: string): string | undefined => {
  if (type !== 'File' && type !== 'Directory' && type !== 'OldFile' && type !== 'ContiguousFile') return `"${path}" is a ${type}, not a file or directory`
  if (path.startsWith('/') || path.split('/').includes('..')) return `"${path}" leaves the build context`
  return undefined
}

/** How much an uploaded context may unpack to (see `[pack] max_context_unpacked_mb` and `max_context_files`). */
export interface UnpackLimits {
  maxBytes: number
  maxFiles: number
}

const mb = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`)

/**
 * Checks an uploaded context without unpacking it: every entry a plain file or directory, inside,
 * and the whole within `limits`, counted from the entries' headers as they stream by. It stops at
 * the first header past a limit, so a small archive that claims gigabytes (a gzip bomb) costs only
 * the bytes read up to there.
 */
export async function verifyContextArchive(file: string, limits: UnpackLimits = { maxBytes: Number.MAX_SAFE_INTEGER, maxFiles: Number.MAX_SAFE_INTEGER }): Promise<{ files: number; bytes: number }> {
  const tar = await import('tar')
  const { createReadStream } = await import('node:fs')
  const { stat } = await import('node:fs/promises')
  const compressed = await stat(file).then((s) => s.size)
  let problem: string | undefined
  let over: FormError | undefined
  let files = 0
  let bytes = 0
  await new Promise<void>((resolve, reject) => {
    // small reads: what one chunk inflates to before the stop is bounded (deflate expands at most ~1000x)
    const input = createReadStream(file, { highWaterMark: 16 * 1024 })
    const parser = new tar.Parser({
      strict: true,
      onReadEntry: (e) => {
        problem ??= ENTRY_PROBLEM(e.path, e.type)
        if (e.type !== 'Directory') files++
        bytes += e.size ?? 0
        e.resume()
        if (over) return
        if (bytes > limits.maxBytes) {
          over = new FormError('CONTEXT_TOO_LARGE_UNPACKED', `the ${mb(compressed)} context unpacks to more than ${mb(bytes)} (at "${e.path}"); the limit is ${mb(limits.maxBytes)} ([pack] max_context_unpacked_mb)`, {
            httpStatus: 413,
            hint: 'leave what the image does not need out of the context (.formignore), or ask the operator to raise max_context_unpacked_mb',
          })
        } else if (files > limits.maxFiles) {
          over = new FormError('CONTEXT_TOO_MANY_FILES', `the ${mb(compressed)} context holds more than ${limits.maxFiles} files; the limit is ${limits.maxFiles} ([pack] max_context_files)`, {
            httpStatus: 413,
            hint: 'leave what the image does not need out of the context (.formignore), or pack many small files into one archive inside it',
          })
        }
        if (over) {
          input.destroy()
          resolve()
        }
      },
    })
    parser.on('error', reject)
    input.on('error', reject)
    parser.on('end', () => resolve())
    input.pipe(parser as unknown as NodeJS.WritableStream)
  }).catch((error: Error) => {
    throw new FormError('CONTEXT_BAD_ARCHIVE', `the uploaded context is not a readable tar.gz: ${error.message}`, { httpStatus: 400 })
  })
  if (over) throw over
  if (problem) throw new FormError('CONTEXT_REFUSED', `the uploaded context is refused: ${problem}`, { httpStatus: 400, hint: 'contexts hold regular files and directories only, all inside the context' })
  return { files, bytes }
}
