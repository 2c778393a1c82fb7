import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { addressFromPrivateKey, recoverAddress } from '../../../core/auth/address.js'
import { canonicalJson } from './canonical.js'
import { ADDRESS } from '../../../core/patterns.js'

/**
 * Identities are Ethereum-style addresses of secp256k1 wallets. Operations are signed with Ed25519
 * (about 4x faster to verify here); a wallet authorizes an Ed25519 key once with a delegation, and
 * every operation carries it. Verified delegations are cached, so the secp256k1 recovery is paid
 * once per key, not per operation.
 */

export { ADDRESS }


export interface Delegation {
  /** the wallet address that authorizes the key */
  address: string
  /** Ed25519 public key, 32 bytes hex */
  key: string
  /** ms since epoch */
  issued: number
  /** secp256k1 recoverable signature (recovery byte first, 65 bytes) hex, over keccak256 of the body */
  sig: string
}

function delegationDigest(d: Omit<Delegation, 'sig'>): Uint8Array {
  return keccak_256(new TextEncoder().encode('form-delegation-v1\n' + canonicalJson({ address: d.address, issued: d.issued, key: d.key })))
}

export function createDelegation(walletPrivateKey: Uint8Array, ed25519PublicKeyHex: string, issued = Date.now()): Delegation {
  const signer = { address: addressFromPrivateKey(walletPrivateKey), sign: (digest: Uint8Array) => secp256k1.sign(digest, walletPrivateKey, { prehash: false, format: 'recovered' }) }
  return delegateKey(signer, ed25519PublicKeyHex, issued)
}

/**
 * A delegation signed through a wallet signer (the CLI's unlocked keystore), which signs 32-byte
 * digests with recoverable signatures and never hands out its private key.
 */
export function delegateKey(signer: { address: string; sign(digest: Uint8Array): Uint8Array }, ed25519PublicKeyHex: string, issued = Date.now()): Delegation {
  const body = { address: signer.address, key: ed25519PublicKeyHex, issued }
  return { ...body, sig: Buffer.from(signer.sign(delegationDigest(body))).toString('hex') }
}

/** True when the delegation's signature recovers to its address. */
export function verifyDelegation(d: Delegation): boolean {
  const sig = Buffer.from(d.sig, 'hex')
  return sig.length === 65 && recoverAddress(delegationDigest(d), sig) === d.address
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export function ed25519PublicKeyFromHex(hex: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, 'hex')]), format: 'der', type: 'spki' })
}

/** Who writes operations: an Ed25519 key and the wallet delegation that vouches for it. */
export interface Author {
  address: string
  delegation: Delegation
  sign(message: Uint8Array): Uint8Array
}

export interface AuthorKeys {
  walletPrivateKey: Uint8Array
  /** PKCS#8 DER of the Ed25519 key */
  opsPrivateKey: Buffer
  delegation: Delegation
}

export function generateAuthorKeys(walletPrivateKey: Uint8Array = secp256k1.utils.randomSecretKey()): AuthorKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length).toString('hex')
  return { walletPrivateKey, opsPrivateKey: privateKey.export({ format: 'der', type: 'pkcs8' }), delegation: createDelegation(walletPrivateKey, pub) }
}

export function authorFromKeys(keys: Pick<AuthorKeys, 'opsPrivateKey' | 'delegation'>): Author {
  const key = createPrivateKey({ key: keys.opsPrivateKey, format: 'der', type: 'pkcs8' })
  return { address: keys.delegation.address, delegation: keys.delegation, sign: (m) => sign(null, m, key) }
}

/** Verifies Ed25519 signatures, caching parsed keys and verified delegations. */
export class SignatureVerifier {
  private readonly keys = new Map<string, KeyObject>()
  private readonly delegations = new Map<string, boolean>()

  delegation(d: Delegation): boolean {
    // every field is in the key: a cached answer must never vouch for an altered delegation
    const id = `${d.address}|${d.key}|${d.issued}|${d.sig}`
    let ok = this.delegations.get(id)
    if (ok === undefined) {
      ok = verifyDelegation(d)
      if (this.delegations.size > 10_000) this.delegations.clear()
      this.delegations.set(id, ok)
    }
    return ok
  }

  signature(publicKeyHex: string, message: Uint8Array, signature: Uint8Array): boolean {
    let key = this.keys.get(publicKeyHex)
    if (!key) {
      key = ed25519PublicKeyFromHex(publicKeyHex)
      if (this.keys.size > 10_000) this.keys.clear()
      this.keys.set(publicKeyHex, key)
    }
    return verify(null, message, key, signature)
  }
}
