import { Command, Option } from 'clipanion'
import { FormError } from '../../../core/errors.js'
import { InstanceCommand } from './shared.js'
import { loadInstanceViews, type ConsoleChunk } from '../../instances/index.js'

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
    const { selectInstances, readConsole } = await loadInstanceViews()
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
