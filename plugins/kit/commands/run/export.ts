import { FormError } from '../../../../core/errors.js'
import { unlockWallet } from '../../lib/signer.js'
import type { KitExportCommand } from '../export.js'
import { terminalPrompts, passwordPrompt } from './prompt.js'

export async function kitExport(cmd: KitExportCommand) {
  if (!cmd.understood) {
    const enquirer = await terminalPrompts(cmd)
    if (!enquirer) throw new FormError('CONFIRMATION_REQUIRED', 'export prints a secret and needs a confirmation', { hint: 'run it on a terminal, or add --yes-i-understand' })
    const { ok } = (await enquirer.prompt([{ type: 'confirm', name: 'ok', message: `Print your ${cmd.mnemonic ? 'recovery phrase' : 'private key'}? Anyone who sees it controls your wallet`, initial: false }])) as { ok: boolean }
    if (!ok) throw new FormError('CANCELLED', 'nothing was printed', { exitCode: 130 })
  }
  const wallet = await unlockWallet(cmd.dirs.configDir, { passwordFile: cmd.passwordFile, prompt: await passwordPrompt(cmd, false) }, 'unlock your keystore')
  if (cmd.mnemonic && !wallet.mnemonic) throw new FormError('NO_MNEMONIC', 'this wallet was imported from a private key or keystore and has no recovery phrase', { hint: 'export the private key instead (without --mnemonic)' })
  const secret = cmd.mnemonic ? wallet.mnemonic! : '0x' + Buffer.from(wallet.privateKey).toString('hex')
  cmd.print({ address: wallet.address, [cmd.mnemonic ? 'mnemonic' : 'privateKey']: secret }, secret)
}
