import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class KitUnlockCommand extends FormCommand {
  static override paths = [['kit', 'unlock']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Keep your wallet unlocked for a while, so commands stop asking for its password',
    details: `
      Asks for the password once (--password-file, FORM_PASSWORD or a prompt) and hands the key to a background agent, like ssh-agent: it answers on a Unix socket in the runtime directory (\`kit-agent.sock\`, mode 0600) and signs for the commands that need your wallet (pack build and ship, manage ...); the key never leaves it. It ends after --timeout, or with \`form kit lock\`. Commands given --password-file do not use it.

      Unlocking again replaces a running agent (with the new timeout).
    `,
    examples: [
      ['For 15 minutes', '$0 kit unlock'],
      ['For a working day', '$0 kit unlock --timeout 8h'],
      ['Lock again', '$0 kit lock'],
    ],
  })
  static valueNames = { '--timeout': 'duration' }
  timeout = Option.String('--timeout', '15m', { description: 'How long the wallet stays unlocked (90s, 15m, 8h, at most 7d)' })
  passwordFile = Option.String('--password-file', { description: 'Read the keystore password from this file (or set FORM_PASSWORD)' })

  async run() {
    return (await import('./run/unlock.js')).kitUnlock(this)
  }
}

export class KitLockCommand extends FormCommand {
  static override paths = [['kit', 'lock']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'End the wallet agent of `form kit unlock`: commands ask for the password again',
    examples: [['Lock', '$0 kit lock']],
  })

  async run() {
    return (await import('./run/unlock.js')).kitLock(this)
  }
}

/** The agent itself (started by `form kit unlock`; not for direct use, so it has no help entry). */
export class KitAgentCommand extends FormCommand {
  static override paths = [['kit', 'agent']]
  timeoutMs = Option.String('--timeout-ms', { required: true })

  async run() {
    return (await import('./run/unlock.js')).kitAgent(this)
  }
}
