import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'
import type { InitAnswers } from '../lib/wizard.js'

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
    const { join, resolve } = await import('node:path')
    const { access } = await import('node:fs/promises')
    const { loadUserConfig, saveUserConfig } = await import('../lib/user-config.js')
    const { askInit } = await import('../lib/wizard.js')
    const { terminalPrompts, passwordPrompt } = await import('./prompt.js')
    const existing = await loadUserConfig(this.dirs.configDir)
    const imports = [this.importMnemonicFile && 'import-mnemonic', this.importPrivateKeyFile && 'import-private-key', this.importKeystore && 'import-keystore'].filter(Boolean) as ('import-mnemonic' | 'import-private-key' | 'import-keystore')[]
    if (imports.length > 1) throw new FormError('USAGE', 'give at most one of --import-mnemonic-file, --import-private-key-file and --import-keystore')
    const hasWallet = existing !== undefined && (await access(existing.keystore).then(() => true, () => false))
    let answers: InitAnswers = {
      action: imports[0] ?? (hasWallet ? 'keep' : 'create'),
      importFile: this.importMnemonicFile ?? this.importPrivateKeyFile ?? this.importKeystore,
      keystore: resolve(this.keystore ?? existing?.keystore ?? join(this.dirs.configDir, 'keystore.json')),
      hosts: this.host ?? existing?.hosts ?? [],
      joinFormnet: this.joinFormnet ?? existing?.formnet.join ?? true,
    }
    if (!this.yes) {
      const enquirer = await terminalPrompts(this)
      if (!enquirer) throw new FormError('NO_TERMINAL', 'kit init asks questions, but stdin is not a terminal', { hint: 'pass --yes with the flags you need (see `form kit init --help`)' })
      answers = await askInit(enquirer, answers, hasWallet)
    }
    for (const h of answers.hosts) if (!/^(https?:\/\/|unix:)/.test(h)) throw new FormError('USAGE', `host "${h}" is not an http(s):// or unix: URL`)

    let address = existing?.address
    if (answers.action !== 'keep') {
      const wallet = await this.loadWallet(answers.action, answers.importFile)
      const { encryptKeystore, writeSecretFile } = await import('../lib/keystore.js')
      const { getPassword } = await import('../lib/password.js')
      const password = await getPassword({ passwordFile: this.passwordFile, prompt: await passwordPrompt(this, true) }, 'encrypt your new keystore')
      const ks = await encryptKeystore(wallet, password)
      await writeSecretFile(answers.keystore, JSON.stringify(ks, null, 2) + '\n', this.force)
      address = wallet.address
    }
    // a formnet membership belongs to the account that joined: keep it only for the same wallet
    const membership = existing && existing.address === address ? existing.formnet : {}
    const config = { version: 1 as const, address: address!, keystore: answers.keystore, hosts: answers.hosts, formnet: { ...membership, join: answers.joinFormnet } }
    const file = await saveUserConfig(this.dirs.configDir, config)
    const { checksumAddress } = await import('../lib/wallet.js')
    this.print({ ...config, address: checksumAddress(config.address), config: file, created: answers.action !== 'keep' }, () =>
      [
        `${answers.action === 'keep' ? 'kept' : answers.action === 'create' ? 'created' : 'imported'} wallet ${checksumAddress(config.address)}`,
        `keystore: ${config.keystore}`,
        `config:   ${file}`,
        `hosts:    ${config.hosts.length ? config.hosts.join(', ') : 'the local node'}`,
        `formnet:  ${config.formnet.join ? 'join' : 'do not join'}`,
        answers.action === 'create' ? 'back up your recovery phrase now: form kit export --mnemonic' : '',
      ]
        .filter(Boolean)
        .join('\n'),
    )
  }

  private async loadWallet(action: string, file: string | undefined) {
    const { readFile } = await import('node:fs/promises')
    const { createWallet, walletFromMnemonic, walletFromPrivateKey } = await import('../lib/wallet.js')
    if (action === 'create') return createWallet()
    if (!file) throw new FormError('USAGE', 'no file to import from')
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      throw new FormError('IMPORT_UNREADABLE', `cannot read ${file}: ${(error as Error).message}`)
    }
    if (action === 'import-mnemonic') return walletFromMnemonic(text)
    if (action === 'import-private-key') return walletFromPrivateKey(text)
    const { decryptKeystore } = await import('../lib/keystore.js')
    const { getPassword } = await import('../lib/password.js')
    const { passwordPrompt } = await import('./prompt.js')
    let ks
    try {
      ks = JSON.parse(text)
    } catch {
      throw new FormError('KEYSTORE_INVALID', `${file} is not JSON`)
    }
    const password = await getPassword({ passwordFile: this.passwordFile, prompt: await passwordPrompt(this, false) }, `unlock ${file}`)
    return decryptKeystore(ks, password, file)
  }
}
