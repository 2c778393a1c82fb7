import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { packageRoot } from '../../../../core/package-root.js'
import { agentSocket, askAgent, parseDuration, serveAgent } from '../../lib/agent.js'
import { unlockWallet } from '../../lib/signer.js'
import { checksumAddress, walletFromPrivateKey } from '../../lib/wallet.js'
import { passwordPrompt } from './prompt.js'
import type { KitUnlockCommand, KitLockCommand, KitAgentCommand } from '../unlock.js'

/**
 * Starts `form kit agent` in its own session and gives it the key through a pipe (not argv or the
 * environment, which other users can read). Resolves with its pid once it listens.
 */
async function startAgent(socket: string, runtimeDir: string, privateKey: Uint8Array, timeoutMs: number): Promise<number> {
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

export async function kitUnlock(cmd: KitUnlockCommand) {
  const timeoutMs = parseDuration(cmd.timeout)
  const wallet = await unlockWallet(cmd.dirs.configDir, { passwordFile: cmd.passwordFile, prompt: await passwordPrompt(cmd, false) }, 'unlock your wallet')
  const socket = agentSocket(cmd.dirs.runtimeDir)
  if (await askAgent(socket, { op: 'address' })) await askAgent(socket, { op: 'lock' })
  const pid = await startAgent(socket, cmd.dirs.runtimeDir, wallet.privateKey, timeoutMs)
  wallet.privateKey.fill(0)
  const expiresAt = new Date(Date.now() + timeoutMs)
  cmd.print({ address: checksumAddress(wallet.address), socket, pid, expiresAt: expiresAt.toISOString() }, `wallet ${checksumAddress(wallet.address)} unlocked until ${expiresAt.toLocaleTimeString()} (agent pid ${pid}, ${socket}); \`form kit lock\` ends it`)
}

export async function kitLock(cmd: KitLockCommand) {
  const socket = agentSocket(cmd.dirs.runtimeDir)
  const answer = await askAgent(socket, { op: 'lock' })
  cmd.print({ locked: true, wasRunning: Boolean(answer?.locked) }, answer?.locked ? 'wallet locked (the agent ended)' : 'no wallet agent was running')
}

export async function kitAgent(cmd: KitAgentCommand) {
  process.title = 'form kit agent'
  const line = await new Promise<string>((resolve) => {
    let buf = ''
    process.stdin.on('data', (d) => (buf += d))
    process.stdin.on('end', () => resolve(buf.trim()))
  })
  const wallet = walletFromPrivateKey(line)
  const agent = await serveAgent({ socket: agentSocket(cmd.dirs.runtimeDir), privateKey: wallet.privateKey, address: wallet.address, timeoutMs: Number(cmd.timeoutMs) })
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => agent.close())
  cmd.context.stdout.write('ready\n')
  await agent.closed
}
