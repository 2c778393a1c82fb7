import got, { RequestError, HTTPError, type Got } from 'got'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { createInterface } from 'node:readline'
import { FormError } from './errors.js'

/** the upload's declared SHA-256 (core/auth/canonical.ts HEADERS.bodySha256; not imported, to keep the CLI's start light) */
const BODY_SHA256 = 'x-form-body-sha256'

/**
 * Adds authentication headers to a mutating request (see core/auth). `audience` names the node the
 * request is for (the client asks the node once); a signature made for one node is refused by others.
 */
export type RequestSigner = (req: { method: string; path: string; body: Buffer | { sha256: string; length: number }; audience: string }) => Record<string, string> | Promise<Record<string, string>>

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

/**
 * A connection per request. With Node's default keep-alive agent a request can go out on an idle socket
 * the node's server is closing just then (it closes idle ones after 5 s; the agent gives them up 1 s
 * earlier, unless its event loop is late): the request fails with EPIPE or ECONNRESET, as seen under load.
 * A connect on the Unix socket or loopback costs far less than the request.
 */
const agent = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) }

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

/** The audience of each node this process talked to, by its socket or URL: asked once, not per request. */
const audiences = new Map<string, Promise<string>>()

export function createClient(options: ClientOptions): NodeClient {
  const prefixUrl = options.socket ? `http://unix:${options.socket}:` : options.url!.replace(/\/$/, '')
  const http: Got = got.extend({
    enableUnixSockets: Boolean(options.socket),
    agent,
    retry: { limit: 0 },
    timeout: { request: options.timeoutMs ?? 30_000 },
    throwHttpErrors: true,
  })
  const target = describeTarget(options)

  const audience = (): Promise<string> => {
    let known = audiences.get(prefixUrl)
    if (!known) {
      // a node too old to name its audience answers 404: sign for none, and let it judge
      known = http(`${prefixUrl}/v1/auth/audience`).then(
        (res) => String((JSON.parse(res.body) as { audience?: string }).audience ?? ''),
        (error) => {
          audiences.delete(prefixUrl)
          if (error instanceof HTTPError && error.response.statusCode === 404) return ''
          throw translate(error, options)
        },
      )
      audiences.set(prefixUrl, known)
    }
    return known
  }
  /** Runs a signed request; when the node's audience changed (a new identity), asks again and retries once. */
  const signed = async <T>(run: (headers: Record<string, string>) => Promise<T>, req: { method: string; path: string; body: Buffer | { sha256: string; length: number } }): Promise<T> => {
    const signer = options.signer
    if (!signer) return run({})
    for (let attempt = 0; ; attempt++) {
      try {
        return await run(await signer({ ...req, audience: await audience() }))
      } catch (error) {
        if (attempt > 0 || (error as FormError).code !== 'AUTH_WRONG_AUDIENCE') throw error
        audiences.delete(prefixUrl)
      }
    }
  }

  const send = async <T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> => {
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body))
    const run = async (auth: Record<string, string>) => {
      try {
        const res = await http(`${prefixUrl}${path}`, { method, body: method === 'GET' ? undefined : payload, headers: { 'content-type': 'application/json', ...auth } })
        return (res.body ? JSON.parse(res.body) : undefined) as T
      } catch (error) {
        throw translate(error, options)
      }
    }
    return method === 'GET' ? run({}) : signed(run, { method, path, body: payload })
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
      // the hash and length are declared and signed up front: the node checks the signature before it stores a byte
      const sha256 = hash.digest('hex')
      const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/octet-stream', 'content-length': String(total), [BODY_SHA256]: sha256 }
      const run = async (auth: Record<string, string>) => {
        try {
          const res = await http(`${prefixUrl}${path}`, { method: 'POST', body: createReadStream(file), headers: { ...headers, ...auth }, timeout: {}, signal: o.signal }).on('uploadProgress', (p) => o.onProgress?.(p.transferred, total))
          return (res.body ? JSON.parse(res.body) : undefined) as T
        } catch (error) {
          throw translate(error, options)
        }
      }
      return signed(run, { method: 'POST', path, body: { sha256, length: total } })
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
