import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import type { StateRecord } from '../lib/store.js'
import { describeRecord, encodePath } from './format.js'

export class StateGetCommand extends FormCommand {
  static override paths = [['state', 'get']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'Print one record of the replicated state',
    examples: [
      ['A node record', '$0 state get nodes 0x1234...'],
      ['As JSON, including a deleted record', '$0 state get dns 0xabc.../www --deleted --json'],
    ],
  })
  collection = Option.String({ required: true })
  key = Option.String({ required: true })
  deleted = Option.Boolean('--deleted', false, { description: 'Show the record even when it was deleted' })

  async run() {
    const client = await this.client()
    const rec = await client.get<StateRecord>(`/v1/state/records/${encodePath(this.collection)}/${encodePath(this.key)}${this.deleted ? '?deleted=true' : ''}`)
    this.print(rec, () => describeRecord(rec) + '\n' + JSON.stringify(rec.value, null, 2))
  }
}
