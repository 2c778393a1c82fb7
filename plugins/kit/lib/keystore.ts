import { createCipheriv, createDecipheriv, pbkdf2Sync, randomBytes, randomUUID, scrypt as scryptCb, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { FormError, errnoCode } from '../../../core/errors.js'
import { writeSecretFile } from '../../../core/files.js'
import { addressFromPrivateKey, type Wallet } from './wallet.js'

const scrypt = promisify(scryptCb) as (password: Buffer, salt: Buffer, keylen: number, options: { N: number; r: number; p: number; maxmem: number }) => Promise<Buffer>

/** Web3 Secret Storage v3, the keystore format of geth and ethers. */
export interface KeystoreV3 {
  version: 3
  id: string
  address: string
  crypto: {
    cipher: 'aes-128-ctr'
    cipherparams: { iv: string }
    ciphertext: string
    kdf: 'scrypt' | 'pbkdf2'
    kdfparams: Record<string, number | string>
    mac: string
  }
  /** our extension: the BIP-39 phrase, encrypted with the same key and its own IV and MAC */
  'x-form-mnemonic'?: { iv: string; ciphertext: string; mac: string }
}

export interface ScryptParams {
  n: number
  r: number
  p: number
}

export const DEFAULT_SCRYPT: ScryptParams = { n: 262_144, r: 8, p: 1 }

async function deriveKey(password: string, crypto: KeystoreV3['crypto']): Promise<Buffer> {
  const k = crypto.kdfparams
  const salt = Buffer.from(String(k.salt), 'hex')
  const dklen = Number(k.dklen ?? 32)
  if (crypto.kdf === 'scrypt') {
    const N = Number(k.n)
    const r = Number(k.r)
    const p = Number(k.p)
    const memory = 128 * N * r * p
    // A keystore from elsewhere must not be able to make us allocate without bound.
    if (!(memory > 0) || memory > 2 ** 31) throw new FormError('KEYSTORE_UNSUPPORTED', `keystore scrypt parameters n=${N} r=${r} p=${p} need too much memory`)
    const pw = Buffer.from(password.normalize('NFKC'))
    // OpenSSL insists on N < 2^(16r) (RFC 7914); keystores in the wild (the spec's own test vector,
    // r=1 with n=2^18) break that rule, so those go through a JS implementation.
    if (N >= 2 ** (16 * r)) {
      const { scryptAsync } = await import('@noble/hashes/scrypt.js')
      return Buffer.from(await scryptAsync(pw, salt, { N, r, p, dkLen: dklen, maxmem: 2 * memory + 64 * 1024 * 1024 }))
    }
    return scrypt(pw, salt, dklen, { N, r, p, maxmem: 2 * memory + 64 * 1024 * 1024 })
  }
  if (crypto.kdf === 'pbkdf2') {
    if (k.prf !== 'hmac-sha256') throw new FormError('KEYSTORE_UNSUPPORTED', `keystore pbkdf2 prf "${k.prf}" is not supported`, { hint: 'only hmac-sha256 keystores can be read' })
    return pbkdf2Sync(Buffer.from(password.normalize('NFKC')), salt, Number(k.c), dklen, 'sha256')
  }
  throw new FormError('KEYSTORE_UNSUPPORTED', `keystore kdf "${crypto.kdf}" is not supported`, { hint: 'keystores use scrypt or pbkdf2' })
}

const mac = (key: Buffer, ciphertext: Buffer) => Buffer.from(keccak_256(Buffer.concat([key.subarray(16, 32), ciphertext])))

function aes(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), iv)
  return Buffer.concat([c.update(data), c.final()])
}

export async function encryptKeystore(wallet: Wallet, password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<KeystoreV3> {
  const salt = randomBytes(32)
  const crypto: KeystoreV3['crypto'] = {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '' },
    ciphertext: '',
    kdf: 'scrypt',
    kdfparams: { dklen: 32, n: params.n, r: params.r, p: params.p, salt: salt.toString('hex') },
    mac: '',
  }
  const key = await deriveKey(password, crypto)
  const iv = randomBytes(16)
  const ciphertext = aes(key, iv, Buffer.from(wallet.privateKey))
  crypto.cipherparams.iv = iv.toString('hex')
  crypto.ciphertext = ciphertext.toString('hex')
  crypto.mac = mac(key, ciphertext).toString('hex')
  const ks: KeystoreV3 = { version: 3, id: randomUUID(), address: wallet.address.replace(/^0x/, ''), crypto }
  if (wallet.mnemonic) {
    const miv = randomBytes(16)
    const mct = aes(key, miv, Buffer.from(wallet.mnemonic, 'utf8'))
    ks['x-form-mnemonic'] = { iv: miv.toString('hex'), ciphertext: mct.toString('hex'), mac: mac(key, mct).toString('hex') }
  }
  return ks
}

export async function decryptKeystore(input: KeystoreV3, password: string, source = 'the keystore'): Promise<Wallet> {
  // Some writers (ethers, MyEtherWallet) spell the section "Crypto".
  const ks = input && !input.crypto && (input as unknown as { Crypto?: KeystoreV3['crypto'] }).Crypto ? { ...input, crypto: (input as unknown as { Crypto: KeystoreV3['crypto'] }).Crypto } : input
  if (ks?.version !== 3 || !ks.crypto) throw new FormError('KEYSTORE_INVALID', `${source} is not a version 3 keystore`, { hint: 'give a Web3 Secret Storage (v3) JSON file' })
  if (ks.crypto.cipher !== 'aes-128-ctr') throw new FormError('KEYSTORE_UNSUPPORTED', `${source} uses cipher ${ks.crypto.cipher}; only aes-128-ctr is supported`)
  const key = await deriveKey(password, ks.crypto)
  const ciphertext = Buffer.from(ks.crypto.ciphertext, 'hex')
  const expected = Buffer.from(ks.crypto.mac, 'hex')
  const actual = mac(key, ciphertext)
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
    throw new FormError('KEYSTORE_WRONG_PASSWORD', `wrong password for ${source}`, { hint: 'try again; the password is the one chosen at `form kit init`' })
  }
  const privateKey = new Uint8Array(createDecipheriv('aes-128-ctr', key.subarray(0, 16), Buffer.from(ks.crypto.cipherparams.iv, 'hex')).update(ciphertext))
  const address = addressFromPrivateKey(privateKey)
  if (ks.address && ks.address.toLowerCase().replace(/^0x/, '') !== address.slice(2)) {
    throw new FormError('KEYSTORE_INVALID', `${source} says address 0x${ks.address} but its key belongs to ${address}`, { hint: 'the file was edited or damaged' })
  }
  let mnemonic: string | undefined
  const m = ks['x-form-mnemonic']
  if (m) {
    const mct = Buffer.from(m.ciphertext, 'hex')
    if (!timingSafeEqual(Buffer.from(m.mac, 'hex'), mac(key, mct))) throw new FormError('KEYSTORE_INVALID', `the mnemonic in ${source} is damaged`)
    mnemonic = aes(key, Buffer.from(m.iv, 'hex'), mct).toString('utf8')
  }
  return { address, privateKey, mnemonic }
}

export async function readKeystore(file: string): Promise<KeystoreV3> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as KeystoreV3
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') throw new FormError('KEYSTORE_NOT_FOUND', `there is no keystore at ${file}`, { hint: 'create a wallet with `form kit init`' })
    throw new FormError('KEYSTORE_INVALID', `cannot read the keystore ${file}: ${(error as Error).message}`)
  }
}

export { writeSecretFile }
