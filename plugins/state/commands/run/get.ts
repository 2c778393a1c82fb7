import type { StateRecord } from '../../lib/store.js'
import { describeRecord, encodePath } from './format.js'
import type { StateGetCommand } from '../get.js'

export async function stateGet(cmd: StateGetCommand) {
  const client = await cmd.client()
  const rec = await client.get<StateRecord>(`/v1/state/records/${encodePath(cmd.collection)}/${encodePath(cmd.key)}${cmd.deleted ? '?deleted=true' : ''}`)
  cmd.print(rec, () => describeRecord(rec) + '\n' + JSON.stringify(rec.value, null, 2))
}
