import type { Signer } from '../../../core/auth/sign.js'
import { FormError } from '../../../core/errors.js'
import { decryptKeystore, readKeystore } from './keystore.js'
import { getPassword, type PasswordSource } from './password.js'
import { loadUserConfig } from './user-config.js'
import { signDigest, type Wallet } from './wallet.js'

/** Unlocks the wallet named in the user config. */
export async function unlockWallet(configDir: string, password: PasswordSource, purpose: string): Promise<Wallet> {
  const config = await loadUserConfig(configDir)
  if (!config) throw new FormError('NO_WALLET', 'there is no wallet yet', { hint: 'create one with `form kit init`' })
  const ks = await readKeystore(config.keystore)
  return decryptKeystore(ks, await getPassword(password, purpose), config.keystore)
}

export function walletSigner(wallet: Wallet): Signer {
  return { address: wallet.address, sign: (digest) => signDigest(wallet.privateKey, digest) }
}

/** A password prompt on the process's terminal (stderr), or undefined without one. */
async function terminalPrompt(): Promise<PasswordSource['prompt']> {
  if (!process.stdin.isTTY) return undefined
  const { passwordPrompt } = await import('../commands/run/prompt.js')
  return passwordPrompt({ context: { stdin: process.stdin, stderr: process.stderr } } as never, false)
}

/**
 * The signer the CLI signs node requests with: the wallet agent of `form kit unlock` when one runs
 * for this wallet (and no password file was given), else the keystore unlocked with the password
 * (--password-file, FORM_PASSWORD, or a prompt on a terminal).
 */
export async function loadSigner(opts: { configDir: string; runtimeDir?: string } & PasswordSource): Promise<Signer> {
  if (!opts.passwordFile) {
    const config = await loadUserConfig(opts.configDir)
    if (config) {
      const { agentSigner, agentSocket } = await import('./agent.js')
      const { resolvePaths } = await import('../../../core/paths.js')
      const agent = await agentSigner(agentSocket(opts.runtimeDir ?? resolvePaths({}, opts.env ?? process.env).runtimeDir), config.address)
      if (agent) return agent
    }
  }
  const prompt = opts.prompt ?? (await terminalPrompt())
  return walletSigner(await unlockWallet(opts.configDir, { ...opts, prompt, signs: true }, 'sign requests with your wallet'))
}
