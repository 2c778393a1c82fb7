import { access, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { encryptKeystore, writeSecretFile, decryptKeystore } from '../../lib/keystore.js'
import { getPassword } from '../../lib/password.js'
import { loadUserConfig, saveUserConfig } from '../../lib/user-config.js'
import { checksumAddress, createWallet, walletFromMnemonic, walletFromPrivateKey } from '../../lib/wallet.js'
import type { InitAnswers } from '../../lib/wizard.js'
import { askInit } from '../../lib/wizard.js'
import type { KitInitCommand } from '../init.js'
import { terminalPrompts, passwordPrompt } from './prompt.js'

export async function kitInit(cmd: KitInitCommand) {
  const existing = await loadUserConfig(cmd.dirs.configDir)
  const imports = [cmd.importMnemonicFile && 'import-mnemonic', cmd.importPrivateKeyFile && 'import-private-key', cmd.importKeystore && 'import-keystore'].filter(Boolean) as ('import-mnemonic' | 'import-private-key' | 'import-keystore')[]
  if (imports.length > 1) throw new FormError('USAGE', 'give at most one of --import-mnemonic-file, --import-private-key-file and --import-keystore')
  const hasWallet = existing !== undefined && (await access(existing.keystore).then(() => true, () => false))
  let answers: InitAnswers = {
    action: imports[0] ?? (hasWallet ? 'keep' : 'create'),
    importFile: cmd.importMnemonicFile ?? cmd.importPrivateKeyFile ?? cmd.importKeystore,
    keystore: resolve(cmd.keystore ?? existing?.keystore ?? join(cmd.dirs.configDir, 'keystore.json')),
    hosts: cmd.host ?? existing?.hosts ?? [],
    joinFormnet: cmd.joinFormnet ?? existing?.formnet.join ?? true,
  }
  if (!cmd.yes) {
    const enquirer = await terminalPrompts(cmd)
    if (!enquirer) throw new FormError('NO_TERMINAL', 'kit init asks questions, but stdin is not a terminal', { hint: 'pass --yes with the flags you need (see `form kit init --help`)' })
    answers = await askInit(enquirer, answers, hasWallet)
  }
  for (const h of answers.hosts) if (!/^(https?:\/\/|unix:)/.test(h)) throw new FormError('USAGE', `host "${h}" is not an http(s):// or unix: URL`)

  let address = existing?.address
  if (answers.action !== 'keep') {
    const wallet = await loadWallet(cmd, answers.action, answers.importFile)
    const password = await getPassword({ passwordFile: cmd.passwordFile, prompt: await passwordPrompt(cmd, true) }, 'encrypt your new keystore')
    const ks = await encryptKeystore(wallet, password)
    await writeSecretFile(answers.keystore, JSON.stringify(ks, null, 2) + '\n', cmd.force)
    address = wallet.address
  }
  // a formnet membership belongs to the account that joined: keep it only for the same wallet
  const membership = existing && existing.address === address ? existing.formnet : {}
  const config = { version: 1 as const, address: address!, keystore: answers.keystore, hosts: answers.hosts, formnet: { ...membership, join: answers.joinFormnet } }
  const file = await saveUserConfig(cmd.dirs.configDir, config)
  cmd.print({ ...config, address: checksumAddress(config.address), config: file, created: answers.action !== 'keep' }, () =>
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

async function loadWallet(cmd: KitInitCommand, action: string, file: string | undefined) {
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
  let ks
  try {
    ks = JSON.parse(text)
  } catch {
    throw new FormError('KEYSTORE_INVALID', `${file} is not JSON`)
  }
  const password = await getPassword({ passwordFile: cmd.passwordFile, prompt: await passwordPrompt(cmd, false) }, `unlock ${file}`)
  return decryptKeystore(ks, password, file)
}
