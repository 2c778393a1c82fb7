import { readFile } from 'node:fs/promises'
import { FormError, errnoCode } from '../../../core/errors.js'

export interface PasswordSource {
  passwordFile?: string
  env?: NodeJS.ProcessEnv
  /** asks on the terminal; absent when there is none */
  prompt?: (message: string) => Promise<string>
  /** the password signs a command's requests: the hint without one suggests `form kit unlock` */
  signs?: boolean
}

/** The keystore password: --password-file, then FORM_PASSWORD, then a prompt on a terminal. */
export async function getPassword(source: PasswordSource, purpose: string): Promise<string> {
  if (source.passwordFile) {
    try {
      // one trailing newline is not part of the password (editors add it)
      const text = (await readFile(source.passwordFile, 'utf8')).replace(/\r?\n$/, '')
      if (!text) throw new FormError('PASSWORD_EMPTY', `the password file ${source.passwordFile} is empty`)
      return text
    } catch (error) {
      if (error instanceof FormError) throw error
      throw new FormError('PASSWORD_FILE', `cannot read the password file ${source.passwordFile}${errnoCode(error) === 'ENOENT' ? ': no such file' : ''}`)
    }
  }
  const env = (source.env ?? process.env).FORM_PASSWORD
  if (env) return env
  if (source.prompt) return source.prompt(purpose)
  throw new FormError('PASSWORD_REQUIRED', `a password is needed to ${purpose}, and there is no terminal to ask on`, {
    hint: `pass --password-file FILE or set FORM_PASSWORD${source.signs ? '; `form kit unlock` asks once for a run of commands' : ''}`,
  })
}
