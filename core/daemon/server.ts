import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { FormError, isFormError } from '../errors.js'
import type { Logger } from '../log.js'
import type { BodyDigest } from '../auth/canonical.js'
import { ApiStream, RouteTable, type ApiRequest, type HttpMethod } from './router.js'
import { listenUnix } from './socket.js'
import { HEX64, HOST_PORT } from '../patterns.js'

/** Verifies a signed request and returns the caller's address (installed by core/auth). */
export type Authenticator = (req: { method: string; path: string; body: Buffer | BodyDigest; headers: IncomingMessage['headers']; receivedAt: number }) => string

export interface ApiServerOptions {
  routes: RouteTable
  log: Logger
  authenticate?: Authenticator
}

/**
 * Streams (watches, follows) held open by remote callers: each holds a socket and a listener until
 * the caller leaves, so one address may not hold more than a follower needs, nor all callers more
 * than the node can carry. The operator's local socket is not counted.
 */
export const MAX_STREAMS_PER_ADDRESS = 16
export const MAX_REMOTE_STREAMS = 512

/** How long a connection may go on sending a refused body once its error answer is out, before it is closed. */
const LINGER_MS = 5_000
const tooLarge = (limit: number, what = 'request body') =>
  new FormError('API_BODY_TOO_LARGE', `the ${what} exceeds this route's limit of ${limit} bytes`, { httpStatus: 413, hint: what === 'upload' ? 'make the build context smaller (.formignore), or raise the node\'s limit' : 'send less in one request' })

/** The declared length of a body, when the request has one (a chunked body has none). */
function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length']
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : undefined
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  // refused from its header alone: nothing of it is read
  if ((declaredLength(req) ?? 0) > limit) return Promise.reject(tooLarge(limit))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        // stop keeping it, but do not reset the connection: the 413 must reach the client first
        req.off('data', onData)
        chunks.length = 0
        req.resume()
        reject(tooLarge(limit))
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/**
 * Streams an upload whose length and SHA-256 were declared (and, on a signed route, signed) up front
 * to a new file in `dir`; a body that is longer, shorter or different is discarded.
 */
async function readBodyToFile(req: IncomingMessage, declared: BodyDigest, dir: string): Promise<{ file: string; sha256: string; size: number }> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, `upload-${randomBytes(8).toString('hex')}`)
  const hash = createHash('sha256')
  let size = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length
      if (size > declared.length) return done(new FormError('API_BODY_MISMATCH', `the upload is longer than the ${declared.length} bytes it declared`, { httpStatus: 400 }))
      hash.update(chunk)
      done(null, chunk)
    },
  })
  try {
    await pipeline(req, meter, createWriteStream(file, { flags: 'wx', mode: 0o600 }))
    const sha256 = hash.digest('hex')
    if (size !== declared.length) throw new FormError('API_BODY_MISMATCH', `the upload ended after ${size} of the ${declared.length} bytes it declared`, { httpStatus: 400 })
    if (declared.sha256 && sha256 !== declared.sha256) throw new FormError('API_BODY_MISMATCH', `the upload's SHA-256 is ${sha256}, not the ${declared.sha256} it declared`, { httpStatus: 400, hint: 'the file changed while it was sent, or the request was tampered with; send it again' })
    return { file, sha256, size }
  } catch (error) {
    await rm(file, { force: true })
    throw error
  }
}

/** What an upload declares before its body: its length and (required when signed) its SHA-256. */
function declaredUpload(req: IncomingMessage, limit: number, signed: boolean): BodyDigest {
  const length = declaredLength(req)
  if (length === undefined) throw new FormError('API_LENGTH_REQUIRED', 'an upload must declare its length (content-length)', { httpStatus: 411 })
  if (length > limit) throw tooLarge(limit, 'upload')
  const sha = req.headers[HEADERS_BODY_SHA256]
  const sha256 = typeof sha === 'string' && HEX64.test(sha) ? sha : ''
  if (signed && !sha256) {
    throw new FormError('AUTH_MISSING', `a signed upload must declare its SHA-256 in ${HEADERS_BODY_SHA256}`, { httpStatus: 401, hint: 'use form (it declares and signs the hash), or update it' })
  }
  return { sha256, length }
}
const HEADERS_BODY_SHA256 = 'x-form-body-sha256'

/** A body must say it is JSON: a page on the LAN cannot then post to the API cross-site (a simple request cannot say so). */
function requireJson(req: IncomingMessage): void {
  const hasBody = (declaredLength(req) ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
  if ((hasBody || type) && type !== 'application/json') {
    throw new FormError('API_UNSUPPORTED_MEDIA_TYPE', `a request body must be JSON (content-type: application/json), not ${type || 'unspecified'}`, { httpStatus: 415 })
  }
}

/** The request's URL; a malformed one is the caller's error (400), never a 500. */
function parseUrl(raw: string | undefined): URL {
  try {
    return new URL(raw ?? '/', 'http://node')
  } catch {
    throw new FormError('API_BAD_PATH', 'the request path is not a valid URL path', { httpStatus: 400 })
  }
}

/**
 * A refused request whose body is still coming in: its rest is read and dropped, so the error answer
 * arrives whole (a reset could destroy it in the client's buffers); a client that goes on sending
 * long after that is cut off.
 */
function lingerOnUnread(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || req.destroyed) return
  // Node would close a `connection: close` request's socket as soon as the answer is out, with body
  // bytes still arriving: the reset can reach the client before it reads the answer.
  res.shouldKeepAlive = true
  req.resume()
  res.once('finish', () => {
    if (req.complete) return
    const timer = setTimeout(() => req.socket.destroy(), LINGER_MS)
    timer.unref()
    req.once('end', () => clearTimeout(timer))
    req.socket.once('close', () => clearTimeout(timer))
  })
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function sendStream(res: ServerResponse, stream: ApiStream, signal: AbortSignal): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' })
  const iterator = stream.source[Symbol.asyncIterator]()
  // Ending the iterator when the client leaves lets watchers release their resources.
  const onAbort = () => void iterator.return?.()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for (;;) {
      const { value, done } = await iterator.next()
      if (done || signal.aborted) break
      if (!res.write(JSON.stringify(value) + '\n')) await new Promise((r) => res.once('drain', r))
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    res.end()
  }
}

/**
 * The node API over HTTP. Every route belongs to a plugin; errors answer as
 * `{"error": {code, message, hint}}` so the client can rethrow them as FormErrors.
 */
export class ApiServer {
  readonly server: Server
  /** TCP listeners for remote callers: only 'open' and 'signed' routes answer there */
  private readonly remote: Server[] = []
  private socketPath?: string
  /** remote address → streams it holds open */
  private readonly streams = new Map<string, number>()

  constructor(private readonly options: ApiServerOptions) {
    this.server = createServer((req, res) => void this.handle(req, res, true))
  }

  private async handle(req: IncomingMessage, res: ServerResponse, local: boolean): Promise<void> {
    const abort = new AbortController()
    res.on('close', () => abort.abort())
    let path = '?'
    try {
      const url = parseUrl(req.url)
      path = url.pathname
      const found = this.options.routes.match(req.method ?? 'GET', url.pathname)
      if (!('route' in found)) {
        throw found.methodMismatch
          ? new FormError('API_METHOD', `${req.method} is not allowed on ${url.pathname}`, { httpStatus: 405 })
          : new FormError('API_NOT_FOUND', `no route ${url.pathname} on this node`, {
              httpStatus: 404,
              hint: 'the node may lack the plugin that serves it; see `form node status`',
            })
      }
      const { route, params } = found
      const receivedAt = Date.now()
      let caller: string | undefined
      if (route.options.auth === 'local' && !local) {
        throw new FormError('API_LOCAL_ONLY', `${url.pathname} is only served on the node's local socket`, { httpStatus: 403 })
      }
      const signed = route.options.auth === 'signed'
      const authenticate = (body: Buffer | BodyDigest) => {
        if (!this.options.authenticate) throw new FormError('AUTH_UNAVAILABLE', 'this node cannot verify signed requests', { httpStatus: 503 })
        return this.options.authenticate({ method: req.method ?? 'GET', path: url.pathname + url.search, body, headers: req.headers, receivedAt })
      }
      let body: Buffer = Buffer.alloc(0)
      let upload: ApiRequest['upload']
      if (route.options.uploadDir) {
        // the signature covers the declared hash and length: it is checked before a byte is stored
        const declared = declaredUpload(req, route.options.maxBody, signed)
        if (signed) caller = authenticate(declared)
        upload = await readBodyToFile(req, declared, route.options.uploadDir)
        const file = upload.file
        res.on('close', () => void rm(file, { force: true }))
      } else {
        // a browser page can reach a TCP listener, never the Unix socket (whose local-only routes take raw bytes)
        if (!local && req.method !== 'GET') requireJson(req)
        body = await readBody(req, route.options.maxBody)
        if (signed) caller = authenticate(body)
      }
      const request: ApiRequest = {
        method: (req.method ?? 'GET') as HttpMethod,
        path: url.pathname,
        params,
        query: url.searchParams,
        headers: req.headers,
        body,
        upload,
        json: <T>() => {
          try {
            return JSON.parse(body.toString('utf8') || 'null') as T
          } catch {
            throw new FormError('API_BAD_JSON', 'the request body is not valid JSON', { httpStatus: 400 })
          }
        },
        caller,
        local,
        raw: req,
        signal: abort.signal,
      }
      const result = await route.handler(request)
      if (result instanceof ApiStream) {
        const release = local ? () => {} : this.holdStream(req.socket.remoteAddress ?? '?', result)
        try {
          await sendStream(res, result, abort.signal)
        } finally {
          release()
        }
      } else sendJson(res, 200, result ?? { ok: true })
    } catch (error) {
      if (res.headersSent) {
        this.options.log.warn('API stream failed', { path, error: (error as Error).message })
        res.destroy()
        return
      }
      lingerOnUnread(req, res)
      if (isFormError(error)) sendJson(res, error.httpStatus, { error: error.toJSON() })
      else {
        this.options.log.error('API handler failed', { path, error: (error as Error).stack ?? String(error) })
        sendJson(res, 500, { error: { code: 'INTERNAL', message: (error as Error).message ?? String(error) } })
      }
    }
  }

  /** Counts a remote caller's open stream, or refuses it (ending its source) when over a limit. */
  private holdStream(address: string, stream: ApiStream): () => void {
    const mine = this.streams.get(address) ?? 0
    let total = 0
    for (const n of this.streams.values()) total += n
    if (mine >= MAX_STREAMS_PER_ADDRESS || total >= MAX_REMOTE_STREAMS) {
      void stream.source[Symbol.asyncIterator]().return?.()
      throw new FormError('API_TOO_MANY_STREAMS', mine >= MAX_STREAMS_PER_ADDRESS ? `this address already holds ${mine} open streams (watches) on this node, the most one address may` : `this node already serves ${total} open streams (watches), the most it takes`, {
        httpStatus: 429,
        hint: 'close some (a `form state watch`, a waiting `form pack ship`) or try again later',
      })
    }
    this.streams.set(address, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.streams.get(address) ?? 1) - 1
      if (left > 0) this.streams.set(address, left)
      else this.streams.delete(address)
    }
  }

  async listen(socketPath: string): Promise<void> {
    await listenUnix(this.server, socketPath)
    this.socketPath = socketPath
  }

  /** Serves the API to remote callers on `host:port` (formnet, or a public address for `form manage join`). */
  async listenTcp(address: string): Promise<string> {
    const m = HOST_PORT.exec(address)
    if (!m) throw new FormError('API_BAD_LISTEN', `"${address}" is not host:port`, { hint: 'e.g. 0.0.0.0:3004 or 10.0.0.1:3004' })
    const server = createServer((req, res) => void this.handle(req, res, false))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new FormError('API_LISTEN', `the node API cannot listen on ${address}: ${error.code ?? error.message}`, { hint: error.code === 'EADDRINUSE' ? 'another process uses that port: pick another with --api-listen' : 'check [node] api_listen' })),
      )
      server.listen(Number(m[2]), m[1].replace(/^\[|\]$/g, ''), () => resolve())
    })
    this.remote.push(server)
    const bound = server.address() as { address: string; port: number }
    return `${bound.address}:${bound.port}`
  }

  async close(): Promise<void> {
    for (const s of this.remote.splice(0)) {
      s.closeAllConnections()
      await new Promise<void>((resolve) => s.close(() => resolve()))
    }
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    // The server bound a temporary name that was renamed, so Node cannot unlink the real path itself.
    if (this.socketPath) await rm(this.socketPath, { force: true })
  }
}
