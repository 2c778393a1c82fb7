import got, { RequestError, HTTPError, type Got } from 'got'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { FormError } from './errors.js'

/** Adds authentication headers to a mutating request (see core/auth). */
export type RequestSigner = (req: { method: string; path: string; body: Buffer | { sha256: string } }) => Record<string, string> | Promise<Record<string, string>>

export interface ClientOptions {
  /** the local node's Unix socket */
  socket?: string
  /** a remote node, e.g. http://10.0.0.1:3004 (used when no socket is given) */
  url?: string
  signer?: RequestSigner
  timeoutMs?: number
}

export interface NodeClient {
  readonly target: string
  get<T = any>(path: string): Promise<T>
  post<T = any>(path: string, body?: unknown): Promise<T>
  put<T = any>(path: string, body?: unknown): Promise<T>
  delete<T = any>(path: string, body?: unknown): Promise<T>
  /** sends a file as the (signed) body of a POST, streamed; progress in bytes sent */
  upload<T = any>(path: string, file: string, options?: { contentType?: string; onProgress?: (sent: number, total: number) => void; signal?: AbortSignal }): Promise<T>
  /** a streaming route's newline-delimited JSON, one parsed value per item */
  stream<T = any>(path: string, signal?: AbortSignal): AsyncIterable<T>
}

const NOT_RUNNING = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ETIMEDOUT'])

function describeTarget(o: ClientOptions): string {
  return o.socket ? `the node socket ${o.socket}` : `the node at ${o.url}`
}

/** Turns transport and API errors into FormErrors that say what to do. */
function translate(error: unknown, options: ClientOptions): FormError {
  if (error instanceof HTTPError) {
    try {
      const body = JSON.parse(String(error.response.body)) as { error?: { code: string; message: string; hint?: string; details?: unknown } }
      if (body.error) return new FormError(body.error.code, body.error.message, { hint: body.error.hint, details: body.error.details })
    } catch {
      // not our JSON: fall through to the generic message
    }
    return new FormError('API_HTTP', `the node answered ${error.response.statusCode} ${error.response.statusMessage ?? ''}`.trim())
  }
  if (error instanceof RequestError && error.code && NOT_RUNNING.has(error.code)) {
    return new FormError('NODE_NOT_RUNNING', `no node is running at ${describeTarget(options)} (${error.code})`, {
      hint: options.socket
        ? 'start one with `form node start` (add --detach to run it in the background), or point at it with --runtime-dir'
        : 'check the node address and that it is up',
      exitCode: 3,
    })
  }
  if (error instanceof FormError) return error
  return new FormError('API_REQUEST', `request to ${describeTarget(options)} failed: ${(error as Error).message}`, { cause: error })
}

export function createClient(options: ClientOptions): NodeClient {
  const prefixUrl = options.socket ? `http://unix:${options.socket}:` : options.url!.replace(/\/$/, '')
  const http: Got = got.extend({
    enableUnixSockets: Boolean(options.socket),
    retry: { limit: 0 },
    timeout: { request: options.timeoutMs ?? 30_000 },
    throwHttpErrors: true,
  })
  const target = describeTarget(options)

  const send = async <T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> => {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body))
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (method !== 'GET' && options.signer) Object.assign(headers, await options.signer({ method, path, body: payload }))
    try {
      const res = await http(`${prefixUrl}${path}`, { method, body: method === 'GET' ? undefined : payload, headers })
      return (res.body ? JSON.parse(res.body) : undefined) as T
    } catch (error) {
      throw translate(error, options)
    }
  }

  return {
    target,
    get: (path) => send('GET', path),
    post: (path, body) => send('POST', path, body),
    put: (path, body) => send('PUT', path, body),
    delete: (path, body) => send('DELETE', path, body),
    async upload<T>(path: string, file: string, o: { contentType?: string; onProgress?: (sent: number, total: number) => void; signal?: AbortSignal } = {}): Promise<T> {
      const hash = createHash('sha256')
      let total = 0
      for await (const chunk of createReadStream(file)) {
        hash.update(chunk as Buffer)
        total += (chunk as Buffer).length
      }
      const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/octet-stream', 'content-length': String(total) }
      if (options.signer) Object.assign(headers, await options.signer({ method: 'POST', path, body: { sha256: hash.digest('hex') } }))
      try {
        const res = await http(`${prefixUrl}${path}`, { method: 'POST', body: createReadStream(file), headers, timeout: {}, signal: o.signal }).on('uploadProgress', (p) => o.onProgress?.(p.transferred, total))
        return (res.body ? JSON.parse(res.body) : undefined) as T
      } catch (error) {
        throw translate(error, options)
      }
    },
    async *stream<T>(path: string, signal?: AbortSignal): AsyncIterable<T> {
      const source = http.stream(`${prefixUrl}${path}`, { timeout: {}, signal })
      // got reports HTTP errors on the stream; collect the body to surface the node's own message.
      const failure = new Promise<never>((_, reject) => source.once('error', (e) => reject(translate(e, options))))
      failure.catch(() => {})
      const lines = createInterface({ input: source, crlfDelay: Infinity })
      try {
        const it = lines[Symbol.asyncIterator]()
        for (;;) {
          const next = await Promise.race([it.next(), failure])
          if (next.done) break
          if (next.value.trim()) yield JSON.parse(next.value) as T
        }
      } finally {
        lines.close()
        source.destroy()
      }
    },
  }
}
