import type { StateDumpCommand } from '../dump.js'

export async function stateDump(cmd: StateDumpCommand) {
  const client = await cmd.client()
  for await (const entry of client.stream('/v1/state/dump')) cmd.context.stdout.write(JSON.stringify(entry) + '\n')
}
