import type { Diagnostic } from '../../lib/formfile/index.js'
import { printFormfile } from '../../lib/formfile/index.js'
import { loadFormfile, reportDiagnostics } from './shared.js'
import type { PackValidateCommand } from '../validate.js'

/** What `form pack init` writes into ssh_authorized_keys when it finds no key of yours. */
export const PLACEHOLDER_SSH_KEY = 'ssh-ed25519 AAAA-replace-with-your-public-key'

/** An error on every line that still holds the placeholder key: nobody could log in with it. */
export function placeholderKeyDiagnostics(source: string, file: string): Diagnostic[] {
  return source.split(/\r?\n/).flatMap((text, i) => {
    const at = text.indexOf(PLACEHOLDER_SSH_KEY)
    if (at === -1) return []
    return [{
      severity: 'error' as const,
      code: 'placeholder-ssh-key',
      message: 'ssh_authorized_keys still holds the template\'s placeholder key, so no one could log in over SSH',
      file,
      line: i + 1,
      column: at + 1,
      length: PLACEHOLDER_SSH_KEY.length,
      text: PLACEHOLDER_SSH_KEY,
      hint: 'put your public key there (the line of ~/.ssh/id_ed25519.pub; `ssh-keygen -t ed25519` makes one), or run `form pack init --force --ssh-key <file.pub>` again',
    }]
  })
}

export async function packValidate(cmd: PackValidateCommand) {
  const loaded = await loadFormfile(cmd.file, cmd.profile, true)
  const formfile = reportDiagnostics(cmd, loaded)
  cmd.print({ ok: true, file: loaded.path, formfile, diagnostics: loaded.diagnostics }, () => printFormfile(formfile))
}
