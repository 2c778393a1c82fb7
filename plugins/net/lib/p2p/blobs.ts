import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { FormError } from '../../../../core/errors.js'
import { FrameReader, writeFrame } from './framing.js'
import { HEX64 } from '../../../../core/patterns.js'

export const BLOB_PROTOCOL = '/form/blob/1.0.0'
const HASH = HEX64
const CHUNK = 256 * 1024
/** `zeros` stands for a run of zero bytes (its payload: the run's length, 4 bytes): holes cost nothing on the wire */
/** `refused`: the asking peer may not have blobs from this node (it is not an admitted member) */
const FRAME = { request: 1, header: 2, error: 3, data: 4, end: 5, zeros: 6, refused: 7 } as const
/** The unit in which the provider looks for zeros to send as a `zeros` frame. */
const ZERO_RUN = 64 * 1024
const ZERO_CHUNK = Buffer.alloc(CHUNK)
/** The unit in which a fetched blob's zeros become holes: a filesystem block. */
const HOLE = 4096

/**
 * Splits `buf` into its longest runs of all-zero and of other pieces. Pieces are `unit` bytes (at
 * most CHUNK), aligned on multiples of `unit` counted from `offset`, the position of `buf` in its file.
 */
function* zeroRuns(buf: Buffer, unit: number, offset = 0): Generator<{ from: number; to: number; zero: boolean }> {
  let from = 0
  let zero = false
  for (let at = 0; at < buf.length; ) {
    const end = Math.min(buf.length, at + unit - ((offset + at) % unit))
    const isZero = ZERO_CHUNK.compare(buf, at, end, 0, end - at) === 0
    if (at > from && isZero !== zero) {
      yield { from, to: at, zero }
      from = at
    }
    zero = isZero
    at = end
  }
  if (buf.length > from) yield { from, to: buf.length, zero }
}

/**
 * Writes `data` at `position`, leaving every whole 4 KiB block of zeros unwritten (a hole in a new
 * file, so images keep their sparseness across a transfer). Blocks are counted from the start of
 * the file, so a hole is always whole filesystem blocks.
 */
export async function writeSparse(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  for (const run of zeroRuns(buf, HOLE, position)) if (!run.zero) await fh.write(buf, run.from, run.to - run.from, position + run.from)
}

/** The DHT key of a blob: a CIDv1 (raw codec) of its SHA-256. */
export function blobCid(hash: string): CID {
  return CID.createV1(0x55, Digest.create(0x12, Buffer.from(hash, 'hex')))
}

/** Content-addressed files under <dir>/sha256/<hex>, written atomically. */
export class BlobStore {
  constructor(readonly dir: string) {}

  path(hash: string): string {
    if (!HASH.test(hash)) throw new FormError('BLOB_BAD_HASH', `"${hash}" is not a SHA-256 hex digest`)
    return join(this.dir, 'sha256', hash)
  }

  async size(hash: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(hash))).size
    } catch {
      return undefined
    }
  }

  async put(data: Uint8Array): Promise<string> {
    const hash = createHash('sha256').update(data).digest('hex')
    const tmp = await this.tempFile()
    const fh = await open(tmp, 'wx', 0o644)
    await fh.writeFile(data)
    await fh.sync()
    await fh.close()
    await rename(tmp, this.path(hash))
    return hash
  }

  /**
   * Moves a finished file into the store by its hash. The file is read once as a stream (images are
   * gigabytes) and must live on the same filesystem as the store, since it is renamed, not copied.
   */
  async putFile(file: string): Promise<{ sha256: string; size: number }> {
    const sha = createHash('sha256')
    let size = 0
    for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) {
      sha.update(chunk as Buffer)
      size += (chunk as Buffer).length
    }
    const hash = sha.digest('hex')
    await mkdir(join(this.dir, 'sha256'), { recursive: true })
    await rename(file, this.path(hash))
    return { sha256: hash, size }
  }

  async tempFile(): Promise<string> {
    await mkdir(join(this.dir, 'sha256'), { recursive: true })
    await mkdir(join(this.dir, 'tmp'), { recursive: true })
    return join(this.dir, 'tmp', randomBytes(8).toString('hex'))
  }

  /**
   * Serves one request on an inbound blob stream. A peer that may not have blobs (`allowed` false)
   * is told so before its request is read, and is given neither the blob nor whether it is here.
   */
  async serve(stream: Stream, allowed = true): Promise<void> {
    if (!allowed) {
      await writeFrame(stream, FRAME.refused, Buffer.from('this node serves blobs only to admitted members of its network'))
      return
    }
    const reader = new FrameReader(stream, 1024)
    const req = await reader.next()
    if (req?.type !== FRAME.request) throw new Error('expected a blob request')
    const hash = req.payload.toString('utf8')
    const size = HASH.test(hash) ? await this.size(hash) : undefined
    if (size === undefined) {
      await writeFrame(stream, FRAME.error, Buffer.from(`no blob ${hash}`))
      return
    }
    await writeFrame(stream, FRAME.header, Buffer.from(JSON.stringify({ size })))
    for await (const chunk of createReadStream(this.path(hash), { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
      // a run of zeros goes out as its length; consecutive data pieces as one frame
      for (const { from, to, zero } of zeroRuns(chunk, ZERO_RUN)) {
        if (!zero) await writeFrame(stream, FRAME.data, chunk.subarray(from, to))
        else {
          const length = Buffer.alloc(4)
          length.writeUInt32BE(to - from)
          await writeFrame(stream, FRAME.zeros, length)
        }
      }
    }
    await writeFrame(stream, FRAME.end, new Uint8Array())
  }

  /**
   * Fetches a blob over an outbound stream, hashing while it streams to a temporary file; only a
   * complete transfer with the right hash and within `maxBytes` lands in the store. Runs of zeros
   * are not written but skipped (hashed all the same), and the length is set at the end, so a
   * sparse image stays sparse on the receiving node, trailing zeros included.
   */
  async fetchFrom(stream: Stream, hash: string, maxBytes: number, options: { timeoutMs?: number } = {}): Promise<void> {
    this.path(hash)
    await writeFrame(stream, FRAME.request, Buffer.from(hash))
    // a provider that stalls (after its header, say) is given up on after timeoutMs, not waited for forever
    const reader = new FrameReader(stream, { maxFrame: CHUNK + 1024, timeoutMs: options.timeoutMs ?? 30_000 })
    const head = await reader.next()
    if (head?.type === FRAME.error) throw new FormError('BLOB_NOT_FOUND', head.payload.toString('utf8'))
    if (head?.type === FRAME.refused) throw new FormError('BLOB_REFUSED', `the provider refused: ${head.payload.toString('utf8').slice(0, 200)}`, { hint: 'a node gets blobs once it is an admitted member (form node status says whether it is)' })
    if (head?.type !== FRAME.header) throw new FormError('BLOB_PROTOCOL', 'the provider sent no header')
    let size: number
    try {
      ;({ size } = JSON.parse(head.payload.toString('utf8')) as { size: number })
    } catch {
      throw new FormError('BLOB_PROTOCOL', 'the provider sent a header that is not JSON')
    }
    if (!(Number.isSafeInteger(size) && size >= 0) || size > maxBytes) throw new FormError('BLOB_TOO_LARGE', `blob ${hash} is ${size} bytes; the limit is ${maxBytes}`)
    const tmp = await this.tempFile()
    const fh = await open(tmp, 'wx', 0o644)
    const sha = createHash('sha256')
    let received = 0
    try {
      for (;;) {
        const frame = await reader.next()
        if (!frame) throw new FormError('BLOB_TRUNCATED', `the transfer of ${hash} ended after ${received} of ${size} bytes`)
        if (frame.type === FRAME.end) break
        if (frame.type === FRAME.zeros) {
          const length = frame.payload.length === 4 ? frame.payload.readUInt32BE(0) : -1
          if (!(length > 0 && length <= CHUNK)) throw new FormError('BLOB_PROTOCOL', 'a zeros frame must hold a length from 1 to 256 KiB')
          received += length
          if (received > size) throw new FormError('BLOB_TOO_LARGE', `the provider sent more than the ${size} bytes it announced`)
          // nothing to write: the file's length is set at the end, and a hole reads as zeros
          sha.update(ZERO_CHUNK.subarray(0, length))
          continue
        }
        if (frame.type !== FRAME.data) throw new FormError('BLOB_PROTOCOL', `unexpected frame ${frame.type}`)
        received += frame.payload.length
        if (received > size) throw new FormError('BLOB_TOO_LARGE', `the provider sent more than the ${size} bytes it announced`)
        sha.update(frame.payload)
        await writeSparse(fh, frame.payload, received - frame.payload.length)
      }
      const got = sha.digest('hex')
      if (received !== size) throw new FormError('BLOB_TRUNCATED', `received ${received} of ${size} bytes of ${hash}`)
      if (got !== hash) throw new FormError('BLOB_HASH_MISMATCH', `the provider sent content whose SHA-256 is ${got}, not ${hash}`)
      await fh.truncate(size)
      await fh.sync()
      await fh.close()
      await rename(tmp, this.path(hash))
    } catch (error) {
      await fh.close().catch(() => {})
      await rm(tmp, { force: true })
      throw error
    }
  }
}

/**
 * Gets a blob from the first provider that delivers it: each is tried in turn, and one that fails,
 * lies or stalls (no bytes for `timeoutMs`) is dropped for the next. Returns who served it.
 */
export async function fetchFromProviders(
  store: BlobStore,
  hash: string,
  providers: AsyncIterable<string>,
  open: (provider: string) => Promise<Stream>,
  options: { maxBytes: number; timeoutMs: number; onFailure?: (provider: string, error: Error) => void },
): Promise<{ provider: string } | { failures: string[] }> {
  const failures: string[] = []
  for await (const provider of providers) {
    let stream: Stream | undefined
    try {
      stream = await open(provider)
      await store.fetchFrom(stream, hash, options.maxBytes, { timeoutMs: options.timeoutMs })
      await stream.close().catch(() => {})
      return { provider }
    } catch (error) {
      stream?.abort(error as Error)
      failures.push(`${provider}: ${(error as Error).message}`)
      options.onFailure?.(provider, error as Error)
    }
  }
  return { failures }
}
