import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError, errnoCode } from '../../../core/errors.js'

export class NodeLogsCommand extends FormCommand {
  static override paths = [['node', 'logs']]
  static override usage = Command.Usage({
    category: 'Node',
    description: "Print the node's log",
    examples: [
      ['The last 50 lines', '$0 node logs'],
      ['Follow new lines as they are written', '$0 node logs -f'],
      ['The last 200 lines', '$0 node logs -n 200'],
    ],
  })
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing lines as they are written' })
  lines = Option.String('--lines,-n', '50', { description: 'How many of the last lines to print first' })

  async run() {
    const { open, stat } = await import('node:fs/promises')
    const file = this.dirs.logFile
    const count = Number(this.lines)
    if (!Number.isInteger(count) || count < 0) throw new FormError('USAGE', `--lines must be a whole number (got "${this.lines}")`)
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
      if (tail.length) this.context.stdout.write(tail.join('\n') + '\n')
      if (!this.follow) return 0
      let offset = size
      const { fileGrowth } = await import('../../../core/files.js')
      for (;;) {
        // woken by the write itself; the bound catches a rotated log, which the watch of the old file misses
        await fileGrowth(file, offset, 2000)
        const now = (await stat(file)).size
        if (now < offset) offset = 0 // rotated or truncated
        if (now > offset) {
          const chunk = Buffer.alloc(now - offset)
          await fh.read(chunk, 0, chunk.length, offset)
          this.context.stdout.write(chunk)
          offset = now
        }
      }
    } finally {
      await fh.close()
    }
  }
}
