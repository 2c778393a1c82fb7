import { Command, Option } from 'clipanion'
import { InstanceCommand } from './shared.js'

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
    return (await import('./run/logs.js')).manageLogs(this)
  }
}
