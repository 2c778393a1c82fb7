import { FormError } from './errors.js'

export interface DetachOptions {
  /** what is starting, for messages ("the node", "formnet-up") */
  what: string
  /** output of the background process goes here */
  logFile: string
  /** set to "1" in the background process, so it knows it runs detached */
  envFlag: string
  /** true once the background process with this pid is ready */
  isReady(pid: number): Promise<boolean>
  timeoutMs: number
}

/**
 * Re-runs the current command without --detach in a new session, output to a log file, and waits
 * until it is ready, exits, or the time is up. Returns the background process's pid.
 */
export async function runDetached(o: DetachOptions): Promise<number> {
  const { spawn } = await import('node:child_process')
  const { mkdir, open } = await import('node:fs/promises')
  const { dirname } = await import('node:path')
  await mkdir(dirname(o.logFile), { recursive: true })
  const logFd = await open(o.logFile, 'a')
  const args = process.argv.slice(1).filter((a) => a !== '--detach' && a !== '-d')
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    detached: true,
    stdio: ['ignore', logFd.fd, logFd.fd],
    env: { ...process.env, [o.envFlag]: '1' },
  })
  await logFd.close()
  let exited: number | null | undefined
  child.once('exit', (code) => (exited = code))
  child.unref()
  const deadline = Date.now() + o.timeoutMs
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      throw new FormError('DETACHED_START_FAILED', `${o.what} exited during start-up (exit code ${exited})`, { hint: `see why in ${o.logFile}` })
    }
    if (await o.isReady(child.pid!).catch(() => false)) return child.pid!
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new FormError('DETACHED_START_TIMEOUT', `${o.what} (pid ${child.pid}) was not ready within ${Math.round(o.timeoutMs / 1000)} s`, {
    hint: `it may still be starting; see ${o.logFile}`,
  })
}
