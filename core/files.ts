import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { FormError, errnoCode } from './errors.js'

/**
 * Writes a file with mode 0600 atomically: a temporary file in the same directory, fsynced, then
 * renamed. Refuses to replace an existing file unless `overwrite`.
 */
export async function writeSecretFile(file: string, content: string | Uint8Array, overwrite = false): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  if (!overwrite) {
    try {
      await readFile(file)
      throw new FormError('FILE_EXISTS', `${file} already exists`, { hint: 'pass --force to replace it (the old key is lost unless you have a copy)' })
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error
    }
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(content)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, file)
  } catch (error) {
    await rm(tmp, { force: true })
    throw error
  }
}
