import type { StateRecord } from '../../lib/store.js'
import { recordLine } from './format.js'
import type { StateWatchCommand } from '../watch.js'

export async function stateWatch(cmd: StateWatchCommand) {
  const client = await cmd.client()
  const q = cmd.prefix ? `?prefix=${encodeURIComponent(cmd.prefix)}` : ''
  for await (const change of client.stream<StateRecord>(`/v1/state/watch/${encodeURIComponent(cmd.collection)}${q}`)) {
    cmd.context.stdout.write(cmd.json ? JSON.stringify(change) + '\n' : recordLine(change) + '\n')
  }
}
