import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

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
    const { terminalPrompts, passwordPrompt } = await import('./prompt.js')
    if (!this.understood) {
      const enquirer = await terminalPrompts(this)
      if (!enquirer) throw new FormError('CONFIRMATION_REQUIRED', 'export prints a secret and needs a confirmation', { hint: 'run it on a terminal, or add --yes-i-understand' })
      const { ok } = (await enquirer.prompt([{ type: 'confirm', name: 'ok', message: `Print your ${this.mnemonic ? 'recovery phrase' : 'private key'}? Anyone who sees it controls your wallet`, initial: false }])) as { ok: boolean }
      if (!ok) throw new FormError('CANCELLED', 'nothing was printed', { exitCode: 130 })
    }
    const { unlockWallet } = await import('../lib/signer.js')
    const wallet = await unlockWallet(this.dirs.configDir, { passwordFile: this.passwordFile, prompt: await passwordPrompt(this, false) }, 'unlock your keystore')
    if (this.mnemonic && !wallet.mnemonic) throw new FormError('NO_MNEMONIC', 'this wallet was imported from a private key or keystore and has no recovery phrase', { hint: 'export the private key instead (without --mnemonic)' })
    const secret = this.mnemonic ? wallet.mnemonic! : '0x' + Buffer.from(wallet.privateKey).toString('hex')
    this.print({ address: wallet.address, [this.mnemonic ? 'mnemonic' : 'privateKey']: secret }, secret)
  }
}
