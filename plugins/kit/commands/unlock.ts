import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'

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
    const { agentSocket, askAgent, parseDuration } = await import('../lib/agent.js')
    const { unlockWallet } = await import('../lib/signer.js')
    const { passwordPrompt } = await import('./prompt.js')
    const { checksumAddress } = await import('../lib/wallet.js')
    const timeoutMs = parseDuration(this.timeout)
    const wallet = await unlockWallet(this.dirs.configDir, { passwordFile: this.passwordFile, prompt: await passwordPrompt(this, false) }, 'unlock your wallet')
    const socket = agentSocket(this.dirs.runtimeDir)
    if (await askAgent(socket, { op: 'address' })) await askAgent(socket, { op: 'lock' })
    const pid = await startAgent(socket, this.dirs.runtimeDir, wallet.privateKey, timeoutMs)
    wallet.privateKey.fill(0)
    const expiresAt = new Date(Date.now() + timeoutMs)
    this.print({ address: checksumAddress(wallet.address), socket, pid, expiresAt: expiresAt.toISOString() }, `wallet ${checksumAddress(wallet.address)} unlocked until ${expiresAt.toLocaleTimeString()} (agent pid ${pid}, ${socket}); \`form kit lock\` ends it`)
  }
}

/**
 * Starts `form kit agent` in its own session and gives it the key through a pipe (not argv or the
 * environment, which other users can read). Resolves with its pid once it listens.
 */
async function startAgent(socket: string, runtimeDir: string, privateKey: Uint8Array, timeoutMs: number): Promise<number> {
  const { spawn } = await import('node:child_process')
  const { join } = await import('node:path')
  const { packageRoot } = await import('../../../core/package-root.js')
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'form.js'), 'kit', 'agent', '--runtime-dir', runtimeDir, '--timeout-ms', String(timeoutMs)], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: '/',
  })
  child.stdin.end(Buffer.from(privateKey).toString('hex') + '\n')
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const ready = await new Promise<boolean>((resolve) => {
    child.stdout.on('data', () => out.includes('ready\n') && resolve(true))
    child.on('exit', () => resolve(false))
  })
  child.stdout.destroy()
  child.stderr.destroy()
  child.unref()
  if (!ready) throw new FormError('AGENT_START', `the wallet agent did not start: ${out.trim().split('\n').pop() ?? 'it exited'}`, { hint: `check that the runtime directory ${runtimeDir} is writable` })
  return child.pid!
}

export class KitLockCommand extends FormCommand {
  static override paths = [['kit', 'lock']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'End the wallet agent of `form kit unlock`: commands ask for the password again',
    examples: [['Lock', '$0 kit lock']],
  })

  async run() {
    const { agentSocket, askAgent } = await import('../lib/agent.js')
    const socket = agentSocket(this.dirs.runtimeDir)
    const answer = await askAgent(socket, { op: 'lock' })
    this.print({ locked: true, wasRunning: Boolean(answer?.locked) }, answer?.locked ? 'wallet locked (the agent ended)' : 'no wallet agent was running')
  }
}

/** The agent itself (started by `form kit unlock`; not for direct use, so it has no help entry). */
export class KitAgentCommand extends FormCommand {
  static override paths = [['kit', 'agent']]
  timeoutMs = Option.String('--timeout-ms', { required: true })

  async run() {
    const { agentSocket, serveAgent } = await import('../lib/agent.js')
    const { walletFromPrivateKey } = await import('../lib/wallet.js')
    process.title = 'form kit agent'
    const line = await new Promise<string>((resolve) => {
      let buf = ''
      process.stdin.on('data', (d) => (buf += d))
      process.stdin.on('end', () => resolve(buf.trim()))
    })
    const wallet = walletFromPrivateKey(line)
    const agent = await serveAgent({ socket: agentSocket(this.dirs.runtimeDir), privateKey: wallet.privateKey, address: wallet.address, timeoutMs: Number(this.timeoutMs) })
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => agent.close())
    this.context.stdout.write('ready\n')
    await agent.closed
  }
}
