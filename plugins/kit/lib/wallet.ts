import { randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { HDKey } from '@scure/bip32'
import { generateMnemonic, mnemonicToSeedSync, validateMnemonic } from '@scure/bip39'
import { wordlist } from '@scure/bip39/wordlists/english.js'
import { addressFromPrivateKey, recoverAddress } from '../../../core/auth/address.js'
import { FormError } from '../../../core/errors.js'

export { addressFromPrivateKey, recoverAddress }

export const DERIVATION_PATH = "m/44'/60'/0'/0/0"

export interface Wallet {
  /** lowercase 0x address */
  address: string
  privateKey: Uint8Array
  /** present when the wallet came from a mnemonic */
  mnemonic?: string
}


/** EIP-55 mixed-case checksum, for display. */
export function checksumAddress(address: string): string {
  const hex = address.toLowerCase().replace(/^0x/, '')
  const hash = Buffer.from(keccak_256(new TextEncoder().encode(hex))).toString('hex')
  return '0x' + [...hex].map((c, i) => (Number.parseInt(hash[i], 16) >= 8 ? c.toUpperCase() : c)).join('')
}

export function createWallet(): Wallet {
  return walletFromMnemonic(generateMnemonic(wordlist, 128))
}

export function walletFromMnemonic(mnemonic: string): Wallet {
  const words = mnemonic.trim().toLowerCase().split(/\s+/).join(' ')
  if (!validateMnemonic(words, wordlist)) {
    throw new FormError('WALLET_BAD_MNEMONIC', 'the mnemonic is not a valid BIP-39 English phrase (a word is misspelt, missing, or the checksum fails)', {
      hint: 'check the words and their order; 12 or 24 words separated by spaces',
    })
  }
  const key = HDKey.fromMasterSeed(mnemonicToSeedSync(words)).derive(DERIVATION_PATH).privateKey!
  return { address: addressFromPrivateKey(key), privateKey: key, mnemonic: words }
}

export function walletFromPrivateKey(hex: string): Wallet {
  const clean = hex.trim().replace(/^0x/i, '')
  const bytes = /^[0-9a-fA-F]{64}$/.test(clean) ? Buffer.from(clean, 'hex') : undefined
  if (!bytes || !secp256k1.utils.isValidSecretKey(bytes)) {
    throw new FormError('WALLET_BAD_PRIVATE_KEY', 'the private key is not 32 bytes of hex in the secp256k1 range', { hint: 'give 64 hex digits, with or without 0x' })
  }
  return { address: addressFromPrivateKey(bytes), privateKey: new Uint8Array(bytes) }
}

/** Signs a 32-byte digest: 65 bytes, recovery byte first (noble's "recovered" format). */
export function signDigest(privateKey: Uint8Array, digest: Uint8Array): Uint8Array {
  return secp256k1.sign(digest, privateKey, { prehash: false, format: 'recovered' })
}


export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex')
}
