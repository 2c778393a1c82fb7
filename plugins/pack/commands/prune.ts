import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { formatBytes, table } from '../../../core/output.js'

interface PruneResult {
  freed: number
  removed: Record<string, { items: number; bytes: number }>
  inUse: number
  before: { bytes: number; items: number }
  after: { bytes: number; items: number }
  running: number
}

export class PackPruneCommand extends FormCommand {
  static override paths = [['pack', 'prune']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: "Free the builder's disk: unused contexts, step layers and images",
    details: `Removes from the local node's builder everything no build holds: uploaded contexts and build requests no queued build needs, the step cache and the cached images. A running build keeps the whole step cache. The Debian base stays unless --all (making it again takes minutes). Without this command the builder evicts least recently used items on its own above \`[pack] cache_max_gb\`; \`form node status\` shows what the cache holds.

Talks to the local node only (operator action over its Unix socket).`,
    examples: [
      ['Free what no build needs', '$0 pack prune'],
      ['The Debian base too, as JSON', '$0 pack prune --all --json'],
    ],
  })
  all = Option.Boolean('--all', false, { description: 'Remove the cached Debian base too' })

  async run() {
    const client = await this.client()
    const r = await client.post<PruneResult>('/v1/pack/prune', { all: this.all })
    this.print(r, () => {
      const rows = Object.entries(r.removed).map(([kind, k]) => [kind, String(k.items), formatBytes(k.bytes)])
      const lines = [`freed ${formatBytes(r.freed)}; the builder cache now holds ${formatBytes(r.after.bytes)} in ${r.after.items} item${r.after.items === 1 ? '' : 's'}`]
      if (rows.length) lines.push('', table(rows, ['KIND', 'REMOVED', 'BYTES']).trimEnd())
      if (r.running) lines.push(`${r.running} build${r.running === 1 ? ' is' : 's are'} running: the step cache was kept for ${r.running === 1 ? 'it' : 'them'}`)
      return lines.join('\n')
    })
  }
}
