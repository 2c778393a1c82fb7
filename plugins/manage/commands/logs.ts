import { Command, Option } from 'clipanion'
import { FormError } from '../../../core/errors.js'
import type { NodeClient } from '../../../core/client.js'
import { InstanceCommand } from './shared.js'

type ConsoleChunk = { data: string; offset: number; size: number }

/** Reads an instance's console from its hosting node (`signed` by its owner): from `offset`, else its last `tail` bytes. */
export function readConsole(signed: NodeClient, id: string, at: { offset: number; waitMs?: number } | { tail: number }): Promise<ConsoleChunk> {
  return signed.post<ConsoleChunk>('/v1/node/instances/console', { id, ...at })
}

/** The end of an instance's console (its last `bytes`, whole lines), as text without terminal control sequences. */
export async function consoleTail(signed: NodeClient, id: string, bytes = 3000): Promise<string> {
  const chunk = await readConsole(signed, id, { tail: bytes })
  const data = Buffer.from(chunk.data, 'base64')
  let text = data.toString('utf8')
  // cut in the middle of a line: from the next whole one
  if (chunk.offset > data.length) text = text.slice(text.indexOf('\n') + 1)
  return text
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/[^\x09\x0a\x20-\x7e\u00a0-\uffff]/g, '')
    .trimEnd()
}

export class ManageLogsCommand extends InstanceCommand {
  static override paths = [['manage', 'logs']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: "Print an instance's serial console log, served by the node that hosts it",
    details: `
      The console holds everything the guest prints on ttyS0, across its boots. Only the instance's owner may read it: the request is signed with your wallet. Talk to the hosting node (\`--node\`) when it is not the node in your config.
    `,
    examples: [
      ['The last 16 KiB of the console', '$0 manage logs web-1'],
      ['Follow new output as the guest writes it', '$0 manage logs web-1 -f'],
      ['The whole console', '$0 manage logs web-1 --bytes 0'],
    ],
  })
  instance = Option.String({ name: 'instance' })
  follow = Option.Boolean('--follow,-f', false, { description: 'Keep printing output as it comes' })
  bytes = Option.String('--bytes', '16384', { description: 'How much of the end to print first (0: from the beginning)' })

  async run() {
    const bytes = Number(this.bytes)
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new FormError('USAGE', `--bytes must be a whole number (got "${this.bytes}")`)
    const config = await this.userConfig()
    const { client, views } = await this.instances(config)
    const { selectInstances } = await import('../lib/instances.js')
    const [view] = selectInstances(views, { instance: this.instance })
    const here = (await client.get<{ address: string }>('/v1/state/info')).address
    const host = view.host ?? view.desired!.node
    if (host !== here) {
      throw new FormError('INSTANCE_ELSEWHERE', `instance ${view.id} runs on node ${host}, not on the node this command talks to (${here})`, {
        hint: "point at its node's API with --node http://<its address>:<port>",
      })
    }
    const signed = await this.client({ url: this.nodeUrl(config), signer: await this.signer() })
    type Chunk = ConsoleChunk
    const read = (offset?: number) => readConsole(signed, view.id, offset === undefined ? { tail: bytes || 1 } : { offset })
    let chunk = await read(bytes === 0 ? 0 : undefined)
    const out = this.context.stdout
    const emit = (c: Chunk) => {
      const data = Buffer.from(c.data, 'base64')
      if (data.length) out.write(this.json ? JSON.stringify({ offset: c.offset - data.length, text: data.toString('utf8') }) + '\n' : data)
    }
    emit(chunk)
    // a console larger than one answer comes in pieces
    while (chunk.offset < chunk.size) emit((chunk = await read(chunk.offset)))
    if (!this.follow) return 0
    // the node answers when the guest has printed more, or after 20 s with nothing
    for (;;) {
      const next = await readConsole(signed, view.id, { offset: chunk.offset, waitMs: 20_000 })
      emit(next)
      chunk = next
    }
  }
}
