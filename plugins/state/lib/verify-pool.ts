import { Worker } from 'node:worker_threads'

export interface SignatureCheck {
  /** Ed25519 public key, 32 bytes hex */
  key: string
  message: Buffer
  signature: Buffer
}

/**
 * The checks as one buffer the worker takes over (transferred, not copied): per check the key (32
 * bytes), the signature (64), the message length (u32 LE) and the message. Posted as objects, each
 * check's buffers were cloned with the pooled memory they sit in, which cost the main thread more
 * than encoding the operation did.
 */
function pack(checks: SignatureCheck[]): { packed: Buffer; malformed: number[] } {
  let size = 0
  for (const c of checks) size += 100 + c.message.length
  // its own ArrayBuffer (not a slice of Node's pool), so that it can be transferred
  const out = Buffer.allocUnsafeSlow(size)
  const malformed: number[] = []
  let at = 0
  for (const [i, c] of checks.entries()) {
    out.fill(0, at, at + 96)
    // a key or signature of another size is no match: it must not pass as its zero-padded prefix
    if (c.key.length !== 64 || out.write(c.key, at, 32, 'hex') !== 32 || c.signature.length !== 64) malformed.push(i)
    c.signature.copy(out, at + 32, 0, 64)
    out.writeUInt32LE(c.message.length, at + 96)
    c.message.copy(out, at + 100)
    at += 100 + c.message.length
  }
  return { packed: out, malformed }
}

// The worker is plain JavaScript given as source, so it runs the same from TypeScript sources (tests)
// and from the bundle, with no file of its own to locate.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
const PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const keys = new Map()
parentPort.on('message', ({ id, count, packed }) => {
  const buf = Buffer.from(packed)
  const results = new Uint8Array(count)
  let at = 0
  for (let i = 0; i < count; i++) {
    const keyId = buf.toString('latin1', at, at + 32)
    let key = keys.get(keyId)
    if (key === undefined) {
      try { key = createPublicKey({ key: Buffer.concat([PREFIX, buf.subarray(at, at + 32)]), format: 'der', type: 'spki' }) } catch { key = null }
      if (keys.size > 10000) keys.clear()
      keys.set(keyId, key)
    }
    const length = buf.readUInt32LE(at + 96)
    try { results[i] = key && verify(null, buf.subarray(at + 100, at + 100 + length), key, buf.subarray(at + 32, at + 96)) ? 1 : 0 } catch { results[i] = 0 }
    at += 100 + length
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
    const malformed: number[] = []
    for (let i = 0; i < checks.length; i += per) {
      const worker = this.workers[this.turn++ % this.workers.length]
      const id = this.nextId++
      parts.push(new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject })))
      const part = checks.slice(i, i + per)
      const { packed, malformed: bad } = pack(part)
      for (const j of bad) malformed.push(i + j)
      const transfer = packed.buffer as ArrayBuffer
      worker.postMessage({ id, count: part.length, packed: transfer }, [transfer])
    }
    const results = (await Promise.all(parts)).flatMap((r) => [...r].map((x) => x === 1))
    for (const i of malformed) results[i] = false
    return results
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()))
  }
}
