import { formatBytes, table } from '../../../../core/output.js'
import type { PackPruneCommand } from '../prune.js'

interface PruneResult {
  freed: number
  removed: Record<string, { items: number; bytes: number }>
  inUse: number
  before: { bytes: number; items: number }
  after: { bytes: number; items: number }
  running: number
}

export async function packPrune(cmd: PackPruneCommand) {
  const client = await cmd.client()
  const r = await client.post<PruneResult>('/v1/pack/prune', { all: cmd.all })
  cmd.print(r, () => {
    const rows = Object.entries(r.removed).map(([kind, k]) => [kind, String(k.items), formatBytes(k.bytes)])
    const lines = [`freed ${formatBytes(r.freed)}; the builder cache now holds ${formatBytes(r.after.bytes)} in ${r.after.items} item${r.after.items === 1 ? '' : 's'}`]
    if (rows.length) lines.push('', table(rows, ['KIND', 'REMOVED', 'BYTES']).trimEnd())
    if (r.running) lines.push(`${r.running} build${r.running === 1 ? ' is' : 's are'} running: the step cache was kept for ${r.running === 1 ? 'it' : 'them'}`)
    return lines.join('\n')
  })
}
