import { open, stat } from 'node:fs/promises'
import { FormError, errnoCode } from '../../../../core/errors.js'
import { fileGrowth } from '../../../../core/files.js'
import type { NodeLogsCommand } from '../logs.js'

export async function nodeLogs(cmd: NodeLogsCommand) {
  const file = cmd.dirs.logFile
  const count = Number(cmd.lines)
  if (!Number.isInteger(count) || count < 0) throw new FormError('USAGE', `--lines must be a whole number (got "${cmd.lines}")`)
  let size: number
  try {
    size = (await stat(file)).size
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      throw new FormError('NODE_NO_LOG', `there is no node log at ${file}`, { hint: 'the node has not run with this --data-dir yet; start it with `form node start`' })
    }
    throw error
  }
  const fh = await open(file, 'r')
  try {
    // Read only the tail: logs of long-running nodes grow large.
    const window = Math.min(size, Math.max(64 * 1024, count * 512))
    const buf = Buffer.alloc(window)
    await fh.read(buf, 0, window, size - window)
    const all = buf.toString('utf8').split('\n')
    if (all.at(-1) === '') all.pop()
    if (window < size) all.shift()
    const tail = count === 0 ? [] : all.slice(-count)
    if (tail.length) cmd.context.stdout.write(tail.join('\n') + '\n')
    if (!cmd.follow) return 0
    let offset = size
    for (;;) {
      // woken by the write itself; the bound catches a rotated log, which the watch of the old file misses
      await fileGrowth(file, offset, 2000)
      const now = (await stat(file)).size
      if (now < offset) offset = 0 // rotated or truncated
      if (now > offset) {
        const chunk = Buffer.alloc(now - offset)
        await fh.read(chunk, 0, chunk.length, offset)
        cmd.context.stdout.write(chunk)
        offset = now
      }
    }
  } finally {
    await fh.close()
  }
}
