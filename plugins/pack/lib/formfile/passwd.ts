import { createHash } from 'node:crypto'
import { encrypt } from 'unixcrypt'

const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const SHA512_CRYPT = /^\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$/

/**
 * SHA-512 crypt ($6$) of a USER's password. A value that already is a $6$ hash is kept as is. The
 * salt is derived from the username and password, so the same Formfile always yields the same
 * hash (and build steps stay cached); it reveals only that two builds used the same password.
 */
export function hashPassword(username: string, password: string): string {
  if (SHA512_CRYPT.test(password)) return password
  const digest = createHash('sha256').update('form-passwd-salt\0').update(username).update('\0').update(password).digest()
  const salt = [...digest.subarray(0, 16)].map((b) => CRYPT_ALPHABET[b & 63]).join('')
  return encrypt(password, `$6$${salt}`)
}
