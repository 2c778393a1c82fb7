import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { FormError, errnoCode } from '../../../../core/errors.js'
import { writeSecretFile } from '../../../../core/files.js'

/** WireGuard keys are raw 32-byte Curve25519 keys: base64 in configs and the wg CLI, hex in the UAPI. */
export interface WireGuardKeyPair {
  privateKey: string
  publicKey: string
}

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')

export function generateWireGuardKeys(): WireGuardKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  const priv = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url')
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
  return { privateKey: priv.toString('base64'), publicKey: pub.toString('base64') }
}

export function publicKeyOf(privateKeyBase64: string): string {
  const raw = decodeKey(privateKeyBase64, 'private key')
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' })
  return Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url').toString('base64')
}

export function decodeKey(base64: string, what = 'key'): Buffer {
  const raw = Buffer.from(base64, 'base64')
  if (raw.length !== 32 || raw.toString('base64') !== base64) throw new FormError('WG_BAD_KEY', `the WireGuard ${what} is not 32 bytes of base64`)
  return raw
}

export const toHex = (base64: string) => decodeKey(base64).toString('hex')
export const fromHex = (hex: string) => Buffer.from(hex, 'hex').toString('base64')

/**
 * A WireGuard key pair kept in a 0600 JSON file, made on first use. The public key is derived again
 * on load, so a damaged file is noticed instead of announcing a key that does not match.
 */
export async function loadOrCreateWireGuardKeys(file: string): Promise<WireGuardKeyPair & { created: boolean }> {
  try {
    const { privateKey } = JSON.parse(await readFile(file, 'utf8')) as { privateKey: string }
    return { privateKey, publicKey: publicKeyOf(privateKey), created: false }
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') {
      throw new FormError('WG_KEY_INVALID', `the WireGuard key file ${file} is damaged`, { hint: 'restore it, or delete it to make a new key (peers learn the new one from state)' })
    }
  }
  const keys = generateWireGuardKeys()
  await writeSecretFile(file, JSON.stringify({ privateKey: keys.privateKey, publicKey: keys.publicKey }, null, 2) + '\n')
  return { ...keys, created: true }
}
