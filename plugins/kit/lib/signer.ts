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

/** The signer the CLI signs node requests with. */
export async function loadSigner(opts: { configDir: string } & PasswordSource): Promise<Signer> {
  return walletSigner(await unlockWallet(opts.configDir, opts, 'sign requests with your wallet'))
}
