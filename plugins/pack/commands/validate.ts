import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import type { Diagnostic } from '../lib/formfile/index.js'

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

export class PackValidateCommand extends FormCommand {
  static override paths = [['pack', 'validate']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Check a Formfile and print it normalized',
    details: 'Reports every error and warning with its file, line and column. A valid Formfile is printed with every default spelled out and passwords hashed; `--json` prints the typed structure instead. Exits 1 when there are errors.',
    examples: [
      ['Check ./Formfile', '$0 pack validate'],
      ['Check another file against the devnet limits', '$0 pack validate -f deploy/Formfile --profile devnet'],
      ['The typed structure', '$0 pack validate --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile)' })
  profile = Option.String('--profile', { description: 'Resource limit profile: default or devnet' })

  async run() {
    const { loadFormfile, reportDiagnostics } = await import('./shared.js')
    const { printFormfile } = await import('../lib/formfile/index.js')
    const loaded = await loadFormfile(this.file, this.profile, true)
    const formfile = reportDiagnostics(this, loaded)
    this.print({ ok: true, file: loaded.path, formfile, diagnostics: loaded.diagnostics }, () => printFormfile(formfile))
  }
}
