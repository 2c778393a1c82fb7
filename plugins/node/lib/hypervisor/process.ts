import { spawn, type ChildProcess } from 'node:child_process'
import { access, mkdir, open, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormError } from '../../../../core/errors.js'

/**
 * VM processes outlive the node that started them (so a restarted node can adopt them), so they
 * are found again by pid file and checked by their command line, never trusted by pid alone: pids
 * are reused, and a process whose parent died may linger as a zombie nobody reaps.
 */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** 'alive', 'zombie' (exited, not reaped) or 'gone'. */
export async function processState(pid: number): Promise<'alive' | 'zombie' | 'gone'> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  if (stat === undefined) return 'gone'
  // the state letter follows the command name, which is in parentheses and may itself hold spaces
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  return state === 'Z' || state === 'X' ? 'zombie' : 'alive'
}

export async function cmdlineOf(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return raw.split('\0').filter(Boolean)
}

/** True when `pid` is a live process whose arguments include every one of `tokens`. */
export async function isLiveProcessWith(pid: number, tokens: string[]): Promise<boolean> {
  if ((await processState(pid)) !== 'alive') return false
  const args = await cmdlineOf(pid)
  return tokens.every((t) => args.some((a) => a.includes(t)))
}

/** Resolves when the process is no longer alive (polling: it need not be our child). */
export async function waitForExit(pid: number, pollMs = 200): Promise<void> {
  while ((await processState(pid)) === 'alive') await sleep(pollMs)
}

/**
 * Starts a long-lived process in its own session (a Ctrl-C or SIGKILL of the node does not reach
 * it) with stdout and stderr appended to `logFile`: a pipe would break when the node dies.
 */
export async function spawnDetached(binary: string, args: string[], logFile: string): Promise<ChildProcess> {
  await mkdir(dirname(logFile), { recursive: true })
  const log = await open(logFile, 'a')
  try {
    const child = spawn(binary, args, { detached: true, stdio: ['ignore', log.fd, log.fd] })
    const failed = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined))
      child.once('error', resolve)
    })
    if (failed) {
      throw new FormError('VMM_SPAWN', `cannot run ${binary}: ${failed.message}`, {
        hint: (failed as NodeJS.ErrnoException).code === 'ENOENT' ? `install it, or set its path in the operator config ([node] qemu / cloud_hypervisor)` : undefined,
      })
    }
    child.unref()
    return child
  } finally {
    await log.close()
  }
}

/** The last `bytes` of a file as text (empty when it does not exist). */
export async function tailOf(file: string, bytes = 4096, from = 0): Promise<string> {
  const fh = await open(file, 'r').catch(() => undefined)
  if (!fh) return ''
  try {
    const size = (await fh.stat()).size
    const start = Math.max(from, size - bytes)
    if (start >= size) return ''
    const buf = Buffer.alloc(size - start)
    await fh.read(buf, 0, buf.length, start)
    return buf.toString('utf8')
  } finally {
    await fh.close()
  }
}

/** Bytes [start, end) of a file, fewer if it is shorter. */
export async function readRange(file: string, start: number, end: number): Promise<Buffer> {
  const fh = await open(file, 'r').catch(() => undefined)
  if (!fh || end <= start) {
    await fh?.close()
    return Buffer.alloc(0)
  }
  try {
    const buf = Buffer.alloc(end - start)
    const { bytesRead } = await fh.read(buf, 0, buf.length, start)
    return buf.subarray(0, bytesRead)
  } finally {
    await fh.close()
  }
}

/**
 * Resolves when a VM process is gone. Our own child reports its exit; a process adopted from an
 * earlier node run is no child of ours, so it is polled, sooner when `wake` settles (its control
 * connection closing).
 */
export function exitOf(pid: number, child: ChildProcess | undefined, wake?: Promise<unknown>): Promise<void> {
  if (child) return new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())))
  return (async () => {
    let woken = false
    void wake?.then(() => (woken = true))
    for (;;) {
      if ((await processState(pid)) !== 'alive') return
      await (woken || !wake ? sleep(woken ? 200 : 500) : Promise.race([sleep(1000), wake]))
    }
  })()
}

/** Checks what every backend needs before it boots: a sane name and the files it names. */
export async function checkSpec(spec: { name: string; kernel: string; disk: string; initrd?: string; runDir: string }): Promise<void> {
  if (!/^[a-z0-9-]{1,24}$/.test(spec.name)) throw new FormError('VMM_BAD_SPEC', `VM name "${spec.name}" must be 1-24 of a-z 0-9 -`)
  for (const [what, file] of [['kernel', spec.kernel], ['disk', spec.disk], ...(spec.initrd ? [['initrd', spec.initrd]] : [])]) {
    await access(file).catch(() => {
      throw new FormError('VMM_MISSING_FILE', `the ${what} ${file} does not exist`, { hint: 'the image may be incomplete on this node' })
    })
  }
  await mkdir(spec.runDir, { recursive: true, mode: 0o750 })
}
