import { secp256k1 } from '@noble/curves/secp256k1.js'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** Ethereum-style address: the last 20 bytes of keccak-256 of the uncompressed public key (without 0x04). */
export function addressFromPublicKey(uncompressed: Uint8Array): string {
  return '0x' + Buffer.from(keccak_256(uncompressed.subarray(1)).subarray(-20)).toString('hex')
}

export function addressFromPrivateKey(privateKey: Uint8Array): string {
  return addressFromPublicKey(secp256k1.getPublicKey(privateKey, false))
}

/** The address whose key made a recoverable signature (recovery byte first) of a digest, or undefined. */
export function recoverAddress(digest: Uint8Array, signature: Uint8Array): string | undefined {
  try {
    const compressed = secp256k1.recoverPublicKey(signature, digest, { prehash: false })
    return addressFromPublicKey(secp256k1.Point.fromBytes(compressed).toBytes(false))
  } catch {
    return undefined
  }
}
