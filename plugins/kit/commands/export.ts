import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class KitExportCommand extends FormCommand {
  static override paths = [['kit', 'export']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Print your private key or recovery phrase (after a confirmation)',
    details: 'Anyone who sees the output controls your wallet. Asks for confirmation on a terminal; without one, `--yes-i-understand` is required.',
    examples: [
      ['The private key', '$0 kit export'],
      ['The recovery phrase, in a script', '$0 kit export --mnemonic --yes-i-understand --password-file pw'],
    ],
  })
  mnemonic = Option.Boolean('--mnemonic', false, { description: 'Print the BIP-39 recovery phrase instead of the private key' })
  understood = Option.Boolean('--yes-i-understand', false, { description: 'Skip the confirmation' })
  passwordFile = Option.String('--password-file', { description: 'Read the keystore password from this file' })

  async run() {
    return (await import('./run/export.js')).kitExport(this)
  }
}
