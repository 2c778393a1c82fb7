import { join } from 'node:path'
import type { Signer } from '../../../core/auth/sign.js'
import { FormError } from '../../../core/errors.js'
import { HEX64 } from '../../../core/patterns.js'

/**
 * The wallet agent, like ssh-agent: `form kit unlock` hands the unlocked key to a background process
 * that answers on a Unix socket (mode 0600, in the runtime directory, itself 0700) until it times out
 * or `form kit lock` ends it. Commands ask it to sign digests; the key never leaves it.
 *
 * Protocol: one JSON line per request and per answer on a connection.
 *   {"op":"address"}                 -> {"address":"0x...","expiresAt":ms}
 *   {"op":"sign","digest":"<64 hex>"} -> {"signature":"<130 hex>"}
 *   {"op":"lock"}                    -> {"locked":true}, and the agent exits
 */

export const AGENT_SOCKET = 'kit-agent.sock'
/** an answer that takes longer than this means the agent is stuck */
export const AGENT_REPLY_TIMEOUT_MS = 10_000
/** a request line longer than this is not one of ours */
const MAX_REQUEST_BYTES = 1024

export function agentSocket(runtimeDir: string): string {
  return join(runtimeDir, AGENT_SOCKET)
}

/** "90s", "15m", "8h", "1d" or a number of seconds, in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim())
  const n = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's'] * 1000 : NaN
  if (!(n > 0) || n > 7 * 86400_000) throw new FormError('USAGE', `--timeout "${text}" is not a duration from 1s to 7d`, { hint: 'e.g. 90s, 15m, 8h, 1d' })
  return n
}

export interface AgentAnswer {
  address?: string
  expiresAt?: number
  signature?: string
  locked?: boolean
  error?: string
}

/** One request to the agent; undefined when no agent answers on `socket`. */
export async function askAgent(socket: string, request: object): Promise<AgentAnswer | undefined> {
  const { createConnection } = await import('node:net')
  return new Promise((resolve) => {
    const c = createConnection(socket)
    let buf = ''
    const done = (a: AgentAnswer | undefined) => {
      c.destroy()
      resolve(a)
    }
    c.setTimeout(AGENT_REPLY_TIMEOUT_MS, () => done(undefined))
    c.on('connect', () => c.write(JSON.stringify(request) + '\n'))
    c.on('data', (d) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl === -1) return
      try {
        done(JSON.parse(buf.slice(0, nl)) as AgentAnswer)
      } catch {
        done(undefined)
      }
    })
    c.on('error', () => done(undefined))
    c.on('end', () => done(undefined))
  })
}

/**
 * Serves `privateKey` on `socket` until `timeoutMs` passes or a lock request comes. Resolves when it
 * listens; `closed` resolves when it stops (the socket file is removed then).
 */
export async function serveAgent(opts: { socket: string; privateKey: Uint8Array; address: string; timeoutMs: number }): Promise<{ closed: Promise<void>; close(): void }> {
  const { createServer } = await import('node:net')
  const { chmod, mkdir, rm } = await import('node:fs/promises')
  const { dirname } = await import('node:path')
  const { signDigest } = await import('./wallet.js')
  await mkdir(dirname(opts.socket), { recursive: true, mode: 0o700 })
  if (await askAgent(opts.socket, { op: 'address' })) throw new FormError('AGENT_RUNNING', `an agent already answers on ${opts.socket}`, { hint: 'end it with `form kit lock` first' })
  await rm(opts.socket, { force: true }) // a stale socket of an agent that died
  const expiresAt = Date.now() + opts.timeoutMs
  let closeServer!: () => void
  const closed = new Promise<void>((resolve) => {
    closeServer = () => {
      server.close(() => resolve())
      opts.privateKey.fill(0)
      void rm(opts.socket, { force: true })
    }
  })
  const server = createServer((c) => {
    let buf = ''
    c.setTimeout(AGENT_REPLY_TIMEOUT_MS, () => c.destroy())
    c.on('error', () => c.destroy())
    c.on('data', (d) => {
      buf += d
      if (buf.length > MAX_REQUEST_BYTES) return c.destroy()
      const nl = buf.indexOf('\n')
      if (nl === -1) return
      let answer: AgentAnswer
      let lock = false
      try {
        const req = JSON.parse(buf.slice(0, nl)) as { op?: unknown; digest?: unknown }
        if (req.op === 'address') answer = { address: opts.address, expiresAt }
        else if (req.op === 'lock') (answer = { locked: true }), (lock = true)
        else if (req.op === 'sign' && typeof req.digest === 'string' && HEX64.test(req.digest)) {
          answer = { signature: Buffer.from(signDigest(opts.privateKey, Buffer.from(req.digest, 'hex'))).toString('hex') }
        } else answer = { error: 'unknown request' }
      } catch {
        answer = { error: 'not JSON' }
      }
      c.end(JSON.stringify(answer) + '\n')
      if (lock) closeServer()
    })
  })
  // the socket is created 0600 (umask), not chmod-ed after: nobody else can connect in between
  const umask = process.umask(0o177)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(opts.socket, () => resolve())
    })
  } finally {
    process.umask(umask)
  }
  await chmod(opts.socket, 0o600)
  // the listening server keeps the process alive until it closes; the timer alone does not
  setTimeout(closeServer, opts.timeoutMs).unref()
  return { closed, close: closeServer }
}

/**
 * A Signer backed by the agent on `socket`, for the wallet `expected` (another wallet's agent is not
 * used); undefined when none answers. Signer.sign is synchronous, so each signature is asked by a
 * worker thread while this thread waits on a shared flag (Atomics.wait): one round trip on the socket.
 */
export async function agentSigner(socket: string, expected?: string): Promise<Signer | undefined> {
  const hello = await askAgent(socket, { op: 'address' })
  if (!hello?.address || (expected && hello.address.toLowerCase() !== expected.toLowerCase())) return undefined
  const { MessageChannel, Worker, receiveMessageOnPort } = await import('node:worker_threads')
  const { port1, port2 } = new MessageChannel()
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(WORKER, { eval: true, workerData: { port: port2, flag, socket, timeoutMs: AGENT_REPLY_TIMEOUT_MS }, transferList: [port2] })
  worker.unref()
  port1.unref()
  return {
    address: hello.address,
    sign(digest: Uint8Array): Uint8Array {
      Atomics.store(flag, 0, 0)
      port1.postMessage(Buffer.from(digest).toString('hex'))
      if (Atomics.wait(flag, 0, 0, AGENT_REPLY_TIMEOUT_MS + 1000) === 'timed-out') throw new FormError('AGENT_TIMEOUT', `the wallet agent on ${socket} did not answer`, { hint: 'end it with `form kit lock` and run `form kit unlock` again' })
      const answer = receiveMessageOnPort(port1)?.message as AgentAnswer | undefined
      if (!answer?.signature) {
        throw new FormError('AGENT_GONE', `the wallet agent on ${socket} did not sign${answer?.error ? `: ${answer.error}` : ''} (it may have timed out)`, { hint: 'run `form kit unlock` again, or give the password (FORM_PASSWORD or --password-file)' })
      }
      return new Uint8Array(Buffer.from(answer.signature, 'hex'))
    },
  }
}

// The worker: plain JavaScript (it runs from a string, in the bundle and under tsx alike).
const WORKER = `
const { workerData } = require('node:worker_threads')
const { createConnection } = require('node:net')
const { port, flag, socket, timeoutMs } = workerData
port.on('message', (digest) => {
  let buf = ''
  let sent = false
  const c = createConnection(socket)
  const done = (answer) => {
    if (sent) return
    sent = true
    c.destroy()
    port.postMessage(answer)
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
  }
  c.setTimeout(timeoutMs, () => done({ error: 'no answer' }))
  c.on('connect', () => c.write(JSON.stringify({ op: 'sign', digest }) + '\\n'))
  c.on('data', (d) => {
    buf += d
    const nl = buf.indexOf('\\n')
    if (nl === -1) return
    try { done(JSON.parse(buf.slice(0, nl))) } catch { done({ error: 'bad answer' }) }
  })
  c.on('error', (e) => done({ error: e.code || e.message }))
  c.on('end', () => done({ error: 'closed' }))
})
`
