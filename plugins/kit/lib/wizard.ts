/** The questions of `form kit init`, asked with enquirer. Flags answer them without a terminal. */

export type WalletAction = 'keep' | 'create' | 'import-mnemonic' | 'import-private-key' | 'import-keystore'

export interface InitAnswers {
  action: WalletAction
  /** the file to import from, for the import actions */
  importFile?: string
  keystore: string
  hosts: string[]
  joinFormnet: boolean
}

export interface EnquirerLike {
  prompt(questions: unknown[]): Promise<Record<string, unknown>>
}

export async function askInit(enquirer: EnquirerLike, defaults: InitAnswers, hasWallet: boolean): Promise<InitAnswers> {
  const actions: { name: WalletAction; message: string }[] = [
    ...(hasWallet ? [{ name: 'keep' as const, message: 'Keep my current wallet' }] : []),
    { name: 'create', message: 'Create a new wallet (BIP-39 mnemonic)' },
    { name: 'import-mnemonic', message: 'Import a mnemonic from a file' },
    { name: 'import-private-key', message: 'Import a raw private key from a file' },
    { name: 'import-keystore', message: 'Import an existing keystore file (geth, ethers, ...)' },
  ]
  const { action } = (await enquirer.prompt([
    { type: 'select', name: 'action', message: 'Wallet', choices: actions, initial: Math.max(0, actions.findIndex((a) => a.name === defaults.action)) },
  ])) as { action: WalletAction }
  let importFile = defaults.importFile
  if (action.startsWith('import-')) {
    importFile = ((await enquirer.prompt([{ type: 'input', name: 'file', message: 'File to import from', initial: importFile }])) as { file: string }).file
  }
  const rest = (await enquirer.prompt([
    { type: 'input', name: 'keystore', message: 'Keystore location', initial: defaults.keystore },
    { type: 'input', name: 'hosts', message: 'Node API hosts (comma-separated; empty: the local node)', initial: defaults.hosts.join(',') },
    { type: 'confirm', name: 'joinFormnet', message: 'Join formnet to reach your instances?', initial: defaults.joinFormnet },
  ])) as { keystore: string; hosts: string; joinFormnet: boolean }
  return {
    action,
    importFile,
    keystore: rest.keystore.trim() || defaults.keystore,
    hosts: rest.hosts.split(',').map((h) => h.trim()).filter(Boolean),
    joinFormnet: rest.joinFormnet,
  }
}
