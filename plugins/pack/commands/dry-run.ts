import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class PackDryRunCommand extends FormCommand {
  static override paths = [['pack', 'dry-run']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Show what `form pack build` would do, without building',
    details: 'Prints the resolved resources, the ordered build steps, the files of the build context that would be sent (honouring .formignore, gitignore syntax) with their total size, and the build id: hex(SHA3-256(owner address bytes ‖ NAME)).',
    examples: [
      ['For ./Formfile, owner from `form kit init`', '$0 pack dry-run'],
      ['For another owner, as JSON', '$0 pack dry-run --owner 0x1234567890abcdef1234567890abcdef12345678 --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile)' })
  owner = Option.String('--owner', { description: 'Owner address for the build id (default: the address in your config)' })
  profile = Option.String('--profile', { description: 'Resource limit profile: default or devnet' })

  async run() {
    return (await import('./run/dry-run.js')).packDryRun(this)
  }
}
