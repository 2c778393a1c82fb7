import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class KitInitCommand extends FormCommand {
  static override paths = [['kit', 'init']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Create or import your wallet and write the CLI configuration',
    details: `
      Asks (with the current values as defaults): create a wallet or import one, where to keep the keystore, which node hosts to talk to, and whether to join formnet. Every question has a flag, and \`--yes\` takes the flags and defaults without asking, so it runs without a terminal.

      The keystore is Web3 Secret Storage v3 (geth and ethers open it), mode 0600. The password comes from \`--password-file\`, \`FORM_PASSWORD\`, or a prompt. Secrets are never printed; back them up with \`form kit export\`.
    `,
    examples: [
      ['The interactive wizard', '$0 kit init'],
      ['No terminal: a new wallet', '$0 kit init --yes --password-file ~/.form-password'],
      ['Import a mnemonic, talk to a remote node', '$0 kit init --yes --import-mnemonic-file words.txt --password-file pw --host http://10.0.0.1:3004'],
    ],
  })
  yes = Option.Boolean('--yes,-y', false, { description: 'Do not ask; use the flags and defaults' })
  passwordFile = Option.String('--password-file', { description: 'Read the keystore password from this file' })
  importMnemonicFile = Option.String('--import-mnemonic-file', { description: 'Import the wallet from a BIP-39 phrase in this file' })
  importPrivateKeyFile = Option.String('--import-private-key-file', { description: 'Import the wallet from a hex private key in this file' })
  importKeystore = Option.String('--import-keystore', { description: 'Import an existing v3 keystore file (its password is asked for)' })
  keystore = Option.String('--keystore', { description: 'Where to keep the keystore (default <config-dir>/keystore.json)' })
  host = Option.Array('--host', { description: 'A node API URL (repeatable); none means the local node' })
  joinFormnet = Option.Boolean('--join-formnet', { description: 'Join formnet (--no-join-formnet to opt out)' })
  force = Option.Boolean('--force', false, { description: 'Replace an existing keystore file' })

  async run() {
    return (await import('./run/init.js')).kitInit(this)
  }
}
