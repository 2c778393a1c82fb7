import { Worker } from 'node:worker_threads'

export interface SignatureCheck {
  /** Ed25519 public key, 32 bytes hex */
  key: string
  message: Buffer
  signature: Buffer
}

// The worker is plain JavaScript given as source, so it runs the same from TypeScript sources (tests)
// and from the bundle, with no file of its own to locate.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
const PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const keys = new Map()
parentPort.on('message', ({ id, checks }) => {
  const results = new Uint8Array(checks.length)
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i]
    let key = keys.get(c.key)
    if (!key) {
      try { key = createPublicKey({ key: Buffer.concat([PREFIX, Buffer.from(c.key, 'hex')]), format: 'der', type: 'spki' }) } catch { key = null }
      if (keys.size > 10000) keys.clear()
      keys.set(c.key, key)
    }
    try { results[i] = key && verify(null, c.message, key, c.signature) ? 1 : 0 } catch { results[i] = 0 }
  }
  parentPort.postMessage({ id, results }, [results.buffer])
})
`

interface Pending {
  resolve(results: Uint8Array): void
  reject(error: Error): void
}

/**
 * Ed25519 verification on worker threads, so a node with several cores verifies incoming
 * operations in parallel while the main thread decodes and persists them.
 */
export class VerifyPool {
  private readonly workers: Worker[] = []
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private turn = 0

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true })
      w.unref()
      w.on('message', ({ id, results }: { id: number; results: Uint8Array }) => {
        this.pending.get(id)?.resolve(results)
        this.pending.delete(id)
      })
      w.on('error', (error) => {
        for (const p of this.pending.values()) p.reject(error)
        this.pending.clear()
      })
      this.workers.push(w)
    }
  }

  /** One boolean per check, in order. Large lists are split across the workers. */
  async verify(checks: SignatureCheck[]): Promise<boolean[]> {
    const per = Math.ceil(checks.length / this.workers.length)
    const parts: Promise<Uint8Array>[] = []
    for (let i = 0; i < checks.length; i += per) {
      const worker = this.workers[this.turn++ % this.workers.length]
      const id = this.nextId++
      parts.push(new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject })))
      worker.postMessage({ id, checks: checks.slice(i, i + per) })
    }
    return (await Promise.all(parts)).flatMap((r) => [...r].map((x) => x === 1))
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}
