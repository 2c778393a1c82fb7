import { FormError } from '../../../../core/errors.js'
import { loadInstanceViews, type ConsoleChunk } from '../../../instances/index.js'
import type { ManageLogsCommand } from '../logs.js'

export async function manageLogs(cmd: ManageLogsCommand) {
  const bytes = Number(cmd.bytes)
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new FormError('USAGE', `--bytes must be a whole number (got "${cmd.bytes}")`)
  const config = await cmd.userConfig()
  const { client, views } = await cmd.instances(config)
  const { selectInstances, readConsole } = await loadInstanceViews()
  const [view] = selectInstances(views, { instance: cmd.instance })
  const here = (await client.get<{ address: string }>('/v1/state/info')).address
  const host = view.host ?? view.desired!.node
  if (host !== here) {
    throw new FormError('INSTANCE_ELSEWHERE', `instance ${view.id} runs on node ${host}, not on the node this command talks to (${here})`, {
      hint: "point at its node's API with --node http://<its address>:<port>",
    })
  }
  const signed = await cmd.client({ url: cmd.nodeUrl(config), signer: await cmd.signer() })
  type Chunk = ConsoleChunk
  const read = (offset?: number) => readConsole(signed, view.id, offset === undefined ? { tail: bytes || 1 } : { offset })
  let chunk = await read(bytes === 0 ? 0 : undefined)
  const out = cmd.context.stdout
  const emit = (c: Chunk) => {
    const data = Buffer.from(c.data, 'base64')
    if (data.length) out.write(cmd.json ? JSON.stringify({ offset: c.offset - data.length, text: data.toString('utf8') }) + '\n' : data)
  }
  emit(chunk)
  // a console larger than one answer comes in pieces
  while (chunk.offset < chunk.size) emit((chunk = await read(chunk.offset)))
  if (!cmd.follow) return 0
  // the node answers when the guest has printed more, or after 20 s with nothing
  for (;;) {
    const next = await readConsole(signed, view.id, { offset: chunk.offset, waitMs: 20_000 })
    emit(next)
    chunk = next
  }
}
