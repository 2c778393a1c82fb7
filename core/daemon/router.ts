import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { FormError } from '../errors.js'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'

export interface ApiRequest {
  method: HttpMethod
  /** path without the query string */
  path: string
  params: Record<string, string>
  query: URLSearchParams
  headers: IncomingHttpHeaders
  /** raw body bytes (already read, size-limited) */
  body: Buffer
  /** the body parsed as JSON; throws a 400 FormError when it is not JSON */
  json<T = unknown>(): T
  /** for upload routes: the body as a file (deleted after the response unless the handler moves it) */
  upload?: { file: string; sha256: string; size: number }
  /** the verified address of the signer, for signed requests */
  caller?: string
  /** true when the request came over the local Unix socket */
  local: boolean
  raw: IncomingMessage
  /** aborted when the client goes away (for streaming responses) */
  signal: AbortSignal
}

/** Return one of these from a handler to stream newline-delimited JSON until the iterator ends. */
export class ApiStream {
  constructor(readonly source: AsyncIterable<unknown>) {}
}

export type ApiHandler = (req: ApiRequest) => unknown | Promise<unknown>

/**
 * Who may call a route:
 * - 'open': anyone who can reach the API (reads);
 * - 'signed': the request must carry a valid signature (see core/auth); `req.caller` is set.
 * - 'local': only over the local Unix socket (operator-only actions).
 */
export type RouteAuth = 'open' | 'signed' | 'local'

export interface RouteOptions {
  auth?: RouteAuth
  /** maximum body size in bytes (default 1 MiB) */
  maxBody?: number
  /** stream the body into a file in this directory instead of memory (see ApiRequest.upload) */
  uploadDir?: string
}

export interface Route {
  method: HttpMethod
  pattern: string
  segments: string[]
  handler: ApiHandler
  options: Required<Omit<RouteOptions, 'uploadDir'>> & Pick<RouteOptions, 'uploadDir'>
  owner: string
}

export interface ApiRouter {
  /** `path` is relative to /v1/<plugin>, e.g. '/records/:collection' */
  route(method: HttpMethod, path: string, handler: ApiHandler, options?: RouteOptions): void
  get(path: string, handler: ApiHandler, options?: RouteOptions): void
  post(path: string, handler: ApiHandler, options?: RouteOptions): void
  put(path: string, handler: ApiHandler, options?: RouteOptions): void
  delete(path: string, handler: ApiHandler, options?: RouteOptions): void
}

const DEFAULT_MAX_BODY = 1024 * 1024

export class RouteTable {
  readonly routes: Route[] = []

  add(owner: string, method: HttpMethod, pattern: string, handler: ApiHandler, options: RouteOptions = {}): Route {
    if (!pattern.startsWith('/')) throw new FormError('API_ROUTE', `route ${pattern} of ${owner} must start with /`)
    const segments = pattern.split('/').filter(Boolean)
    const clash = this.routes.find((r) => r.method === method && r.segments.join('/') === segments.join('/'))
    if (clash) throw new FormError('API_ROUTE', `route ${method} ${pattern} of ${owner} is already registered by ${clash.owner}`)
    const auth = options.auth ?? (method === 'GET' ? 'open' : 'signed')
    const route: Route = { method, pattern, segments, handler, owner, options: { auth, maxBody: options.maxBody ?? DEFAULT_MAX_BODY, uploadDir: options.uploadDir } }
    this.routes.push(route)
    return route
  }

  /** Takes back the routes of a service that failed to start: nothing may reach its half-made state. */
  remove(routes: Route[]): void {
    for (const r of routes) {
      const i = this.routes.indexOf(r)
      if (i >= 0) this.routes.splice(i, 1)
    }
  }

  /** A router that prefixes every path with `prefix` (e.g. /v1/state) and records the owner; `added` hears of each route. */
  scoped(owner: string, prefix: string, added?: (route: Route) => void): ApiRouter {
    const route = (method: HttpMethod, path: string, handler: ApiHandler, options?: RouteOptions) => {
      const r = this.add(owner, method, prefix + (path === '/' ? '' : path), handler, options)
      added?.(r)
    }
    return {
      route,
      get: (p, h, o) => route('GET', p, h, o),
      post: (p, h, o) => route('POST', p, h, o),
      put: (p, h, o) => route('PUT', p, h, o),
      delete: (p, h, o) => route('DELETE', p, h, o),
    }
  }

  /** Finds the route for a request; `methodMismatch` tells 405 from 404. */
  match(method: string, path: string): { route: Route; params: Record<string, string> } | { methodMismatch: boolean } {
    const parts = path.split('/').filter(Boolean)
    let methodMismatch = false
    for (const route of this.routes) {
      const params = matchSegments(route.segments, parts)
      if (!params) continue
      if (route.method !== method) {
        methodMismatch = true
        continue
      }
      return { route, params }
    }
    return { methodMismatch }
  }
}

/** A path segment decoded; a malformed %-escape is the caller's error (400), not a 500. */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new FormError('API_BAD_PATH', 'the request path holds a malformed %-escape', { httpStatus: 400, hint: 'escape "%" as %25' })
  }
}

function matchSegments(pattern: string[], parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {}
  for (let i = 0; i < pattern.length; i++) {
    const seg = pattern[i]
    if (seg.startsWith('*')) {
      // a trailing wildcard takes the rest of the path, e.g. keys that contain slashes
      params[seg.slice(1) || 'rest'] = parts.slice(i).map(decode).join('/')
      return params
    }
    if (i >= parts.length) return undefined
    if (seg.startsWith(':')) params[seg.slice(1)] = decode(parts[i])
    else if (seg !== parts[i]) return undefined
  }
  return pattern.length === parts.length ? params : undefined
}
