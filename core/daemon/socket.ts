import { connect } from 'node:net'
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import { dirname } from 'node:path'
import { FormError, errnoCode } from '../errors.js'

/** True when something accepts connections on the socket: a live node owns it. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path)
    const done = (v: boolean) => {
      s.destroy()
      resolve(v)
    }
    s.setTimeout(timeoutMs, () => done(false))
    s.once('connect', () => done(true))
    s.once('error', () => done(false))
  })
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errnoCode(error) === 'EPERM'
  }
}

/**
 * Sends SIGTERM and waits up to `timeoutMs` for the process to end; then, with `kill`, SIGKILL.
 * Says how it ended: 'exited', 'killed', or 'alive' (still running, not killed).
 */
export async function terminate(pid: number, options: { timeoutMs: number; kill: boolean }): Promise<'exited' | 'killed' | 'alive'> {
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return 'exited'
  }
  const deadline = Date.now() + options.timeoutMs
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  if (!processAlive(pid)) return 'exited'
  if (!options.kill) return 'alive'
  process.kill(pid, 'SIGKILL')
  for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 20))
  return 'killed'
}

export async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/** The pid of the node that owns this pid file, if that process still lives. */
export async function runningNodePid(pidFile: string): Promise<number | undefined> {
  const pid = await readPid(pidFile)
  return pid !== undefined && processAlive(pid) ? pid : undefined
}

/**
 * Takes the node lock: the pid file is created exclusively, so of two nodes started at once on the
 * same runtime directory exactly one wins. A pid file left by a crashed node is replaced.
 */
export async function acquirePidFile(pidFile: string, socket: string): Promise<() => Promise<void>> {
  await mkdir(dirname(pidFile), { recursive: true, mode: 0o750 })
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(pidFile, 'wx', 0o644)
      await fh.writeFile(`${process.pid}\n`)
      await fh.close()
      return async () => {
        if ((await readPid(pidFile)) === process.pid) await rm(pidFile, { force: true })
      }
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error
      const other = await runningNodePid(pidFile)
      if (other !== undefined && other !== process.pid) {
        throw new FormError('NODE_ALREADY_RUNNING', `a node is already running (pid ${other}, socket ${socket})`, {
          hint: 'stop it with `form node stop`, or give this node its own --runtime-dir and --data-dir',
        })
      }
      await rm(pidFile, { force: true })
    }
  }
  throw new FormError('NODE_LOCK', `could not take the node lock ${pidFile}`, { hint: 'another node is starting at the same time; retry' })
}

/**
 * Listens on the socket path atomically: bind a private temporary name, set the mode, then rename
 * it into place, so no client ever sees a socket with the wrong permissions. A stale socket (nothing
 * answers) is replaced; a live one is refused.
 */
export async function listenUnix(server: Server, path: string, mode = 0o660): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 })
  if (await socketAnswers(path)) {
    throw new FormError('NODE_ALREADY_RUNNING', `another process is serving the node socket ${path}`, {
      hint: 'stop that node first (`form node stop`), or use a different --runtime-dir',
    })
  }
  const tmp = `${path}.${process.pid}.tmp`
  // sun_path holds 108 bytes on Linux including the terminating NUL.
  if (Buffer.byteLength(tmp) > 107) {
    throw new FormError('SOCKET_PATH_TOO_LONG', `the node socket path ${path} is too long for a Unix socket (${Buffer.byteLength(path)} bytes; the limit is about 95)`, {
      hint: 'use a shorter --runtime-dir (or FORM_RUNTIME_DIR)',
    })
  }
  await rm(tmp, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(tmp, () => {
      server.off('error', reject)
      resolve()
    })
  })
  await chmod(tmp, mode)
  await rename(tmp, path)
}
