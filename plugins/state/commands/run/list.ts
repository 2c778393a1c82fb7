import type { StateRecord } from '../../lib/store.js'
import { recordLine } from './format.js'
import type { StateListCommand } from '../list.js'

export async function stateList(cmd: StateListCommand) {
  const client = await cmd.client()
  const max = cmd.limit === undefined ? Infinity : Number(cmd.limit)
  const records: StateRecord[] = []
  let cursor: string | undefined
  do {
    const q = new URLSearchParams({ limit: String(Math.min(1000, max - records.length)) })
    if (cmd.prefix) q.set('prefix', cmd.prefix)
    if (cursor) q.set('cursor', cursor)
    if (cmd.deleted) q.set('deleted', 'true')
    const page = await client.get<{ records: StateRecord[]; cursor?: string }>(`/v1/state/records/${encodeURIComponent(cmd.collection)}?${q}`)
    records.push(...page.records)
    cursor = page.cursor
  } while (cursor && records.length < max)
  cmd.print({ collection: cmd.collection, records }, () => (records.length ? records.map((r) => recordLine(r)).join('\n') : `no records in ${cmd.collection}`))
}
