import { connect, type Socket } from 'node:net'
import { FormError } from '../../../../core/errors.js'
import { sleep } from './process.js'

export interface QmpEvent {
  event: string
  data?: Record<string, unknown>
}

interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
}

/**
 * A QEMU Machine Protocol client: newline-delimited JSON over QEMU's control socket. QEMU serves
 * one QMP client at a time, so the node holds one connection per VM and sends every command
 * through it. The connection closing means QEMU has exited.
 */
export class QmpClient {
  private buffer = ''
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly listeners: ((e: QmpEvent) => void)[] = []
  readonly closed: Promise<void>

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => this.onData(chunk))
    socket.on('error', () => {}) // 'close' follows and fails what is pending
    void this.closed.then(() => {
      for (const p of this.pending.values()) p.reject(new FormError('VMM_QMP_CLOSED', 'the QEMU control connection closed'))
      this.pending.clear()
    })
  }

  /** Connects (retrying while QEMU creates the socket), reads the greeting and enables commands. */
  static async connect(path: string, options: { timeoutMs?: number; gone?: () => boolean } = {}): Promise<QmpClient> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000)
    let last: Error | undefined
    while (Date.now() < deadline) {
      if (options.gone?.()) break
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path)
          s.once('connect', () => resolve(s))
          s.once('error', reject)
        })
        const client = new QmpClient(socket)
        await client.greeting(Math.max(1000, deadline - Date.now()))
        await client.execute('qmp_capabilities')
        return client
      } catch (error) {
        last = error as Error
        await sleep(50)
      }
    }
    throw new FormError('VMM_QMP_CONNECT', `cannot reach QEMU's control socket ${path}: ${last?.message ?? 'the process exited'}`, {
      hint: 'see the VM process log in the instance directory',
    })
  }

  private greetingWaiter?: { resolve(): void; reject(e: Error): void }

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy()
        reject(new Error('no QMP greeting'))
      }, timeoutMs)
      this.greetingWaiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      }
      void this.closed.then(() => this.greetingWaiter?.reject(new Error('closed before the QMP greeting')))
    })
  }

  private onData(chunk: string): void {
    this.buffer += chunk
    for (let nl = this.buffer.indexOf('\n'); nl !== -1; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).trim()
      this.buffer = this.buffer.slice(nl + 1)
      if (!line) continue
      let msg: Record<string, any>
      try {
        msg = JSON.parse(line)
      } catch {
        continue
      }
      if ('QMP' in msg) {
        this.greetingWaiter?.resolve()
        this.greetingWaiter = undefined
      } else if ('event' in msg) {
        for (const l of this.listeners) l(msg as QmpEvent)
      } else if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id)!
        this.pending.delete(msg.id)
        if (msg.error) p.reject(new FormError('VMM_QMP_ERROR', `QEMU refused the command: ${msg.error.desc ?? msg.error.class}`))
        else p.resolve(msg.return)
      }
    }
  }

  onEvent(listener: (e: QmpEvent) => void): void {
    this.listeners.push(listener)
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.socket.destroyed) return Promise.reject(new FormError('VMM_QMP_CLOSED', 'the QEMU control connection is closed'))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new FormError('VMM_QMP_TIMEOUT', `QEMU did not answer ${command} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      })
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n')
    })
  }

  close(): void {
    this.socket.destroy()
  }
}
