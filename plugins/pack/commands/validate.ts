import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class PackValidateCommand extends FormCommand {
  static override paths = [['pack', 'validate']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Check a Formfile and print it normalized',
    details: 'Reports every error and warning with its file, line and column. A valid Formfile is printed with every default spelled out and passwords hashed; `--json` prints the typed structure instead. Exits 1 when there are errors.',
    examples: [
      ['Check ./Formfile', '$0 pack validate'],
      ['Check another file against the devnet limits', '$0 pack validate -f deploy/Formfile --profile devnet'],
      ['The typed structure', '$0 pack validate --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile)' })
  profile = Option.String('--profile', { description: 'Resource limit profile: default or devnet' })

  async run() {
    return (await import('./run/validate.js')).packValidate(this)
  }
}
