import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { FormError, isFormError } from '../errors.js'
import type { Logger } from '../log.js'
import { ApiStream, RouteTable, type ApiRequest, type HttpMethod } from './router.js'
import { listenUnix } from './socket.js'

/** Verifies a signed request and returns the caller's address (installed by core/auth). */
export type Authenticator = (req: { method: string; path: string; body: Buffer | { sha256: string }; headers: IncomingMessage['headers']; receivedAt: number }) => string

export interface ApiServerOptions {
  routes: RouteTable
  log: Logger
  authenticate?: Authenticator
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        reject(new FormError('API_BODY_TOO_LARGE', `request body exceeds ${limit} bytes`, { httpStatus: 413 }))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Streams an upload to a new file in `dir`, hashing it on the way; removed again if it fails. */
async function readBodyToFile(req: IncomingMessage, limit: number, dir: string): Promise<{ file: string; sha256: string; size: number }> {
  await mkdir(dir, { recursive: true })
  const file = join(dir, `upload-${randomBytes(8).toString('hex')}`)
  const hash = createHash('sha256')
  let size = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length
      if (size > limit) return done(new FormError('API_BODY_TOO_LARGE', `the upload exceeds ${limit} bytes`, { httpStatus: 413, hint: 'make the build context smaller (.formignore), or raise the node\'s limit' }))
      hash.update(chunk)
      done(null, chunk)
    },
  })
  try {
    await pipeline(req, meter, createWriteStream(file, { flags: 'wx', mode: 0o600 }))
  } catch (error) {
    await rm(file, { force: true })
    throw error
  }
  return { file, sha256: hash.digest('hex'), size }
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

  constructor(private readonly options: ApiServerOptions) {
    this.server = createServer((req, res) => void this.handle(req, res, true))
  }

  private async handle(req: IncomingMessage, res: ServerResponse, local: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://node')
    const abort = new AbortController()
    res.on('close', () => abort.abort())
    try {
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
      const upload = route.options.uploadDir ? await readBodyToFile(req, route.options.maxBody, route.options.uploadDir) : undefined
      if (upload) res.on('close', () => void rm(upload.file, { force: true }))
      const body = upload ? Buffer.alloc(0) : await readBody(req, route.options.maxBody)
      if (route.options.auth === 'signed') {
        if (!this.options.authenticate) {
          throw new FormError('AUTH_UNAVAILABLE', 'this node cannot verify signed requests', { httpStatus: 503 })
        }
        caller = this.options.authenticate({ method: req.method ?? 'GET', path: url.pathname + url.search, body: upload ? { sha256: upload.sha256 } : body, headers: req.headers, receivedAt })
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
      if (result instanceof ApiStream) await sendStream(res, result, abort.signal)
      else sendJson(res, 200, result ?? { ok: true })
    } catch (error) {
      if (res.headersSent) {
        this.options.log.warn('API stream failed', { path: url.pathname, error: (error as Error).message })
        res.destroy()
        return
      }
      if (isFormError(error)) sendJson(res, error.httpStatus, { error: error.toJSON() })
      else {
        this.options.log.error('API handler failed', { path: url.pathname, error: (error as Error).stack ?? String(error) })
        sendJson(res, 500, { error: { code: 'INTERNAL', message: (error as Error).message ?? String(error) } })
      }
    }
  }

  async listen(socketPath: string): Promise<void> {
    await listenUnix(this.server, socketPath)
    this.socketPath = socketPath
  }

  /** Serves the API to remote callers on `host:port` (formnet, or a public address for `form manage join`). */
  async listenTcp(address: string): Promise<string> {
    const m = /^(.*):(\d{1,5})$/.exec(address)
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
