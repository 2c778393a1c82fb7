import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import type { StateRecord } from '../lib/store.js'
import { recordLine } from './format.js'

export class StateListCommand extends FormCommand {
  static override paths = [['state', 'list']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'List the records of a collection',
    details: 'Collections: accounts, nodes, cidrs, peers, builds, instances, dns. Pages through the whole collection unless `--limit` is given.',
    examples: [
      ['Every node of the network', '$0 state list nodes'],
      ['The instances of one owner, as JSON', '$0 state list instances --prefix 0xabc.../ --json'],
    ],
  })
  collection = Option.String({ required: true })
  prefix = Option.String('--prefix', { description: 'Only keys that start with this' })
  limit = Option.String('--limit', { description: 'At most this many records' })
  deleted = Option.Boolean('--deleted', false, { description: 'Include deleted records' })

  async run() {
    const client = await this.client()
    const max = this.limit === undefined ? Infinity : Number(this.limit)
    const records: StateRecord[] = []
    let cursor: string | undefined
    do {
      const q = new URLSearchParams({ limit: String(Math.min(1000, max - records.length)) })
      if (this.prefix) q.set('prefix', this.prefix)
      if (cursor) q.set('cursor', cursor)
      if (this.deleted) q.set('deleted', 'true')
      const page = await client.get<{ records: StateRecord[]; cursor?: string }>(`/v1/state/records/${encodeURIComponent(this.collection)}?${q}`)
      records.push(...page.records)
      cursor = page.cursor
    } while (cursor && records.length < max)
    this.print({ collection: this.collection, records }, () => (records.length ? records.map((r) => recordLine(r)).join('\n') : `no records in ${this.collection}`))
  }
}
