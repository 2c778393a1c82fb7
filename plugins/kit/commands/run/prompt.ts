import Enquirer from 'enquirer'
import type { FormCommand } from '../../../../core/command.js'
import { FormError } from '../../../../core/errors.js'

/** Lets tests answer the real prompts (enquirer emits each prompt before it runs). */
export const promptHooks: { onPrompt?: (prompt: unknown) => void } = {}

/** An enquirer bound to the command's streams, or undefined when stdin is not a terminal. */
export async function terminalPrompts(cmd: FormCommand): Promise<{ prompt(q: unknown[]): Promise<Record<string, unknown>> } | undefined> {
  const stdin = cmd.context.stdin as NodeJS.ReadStream
  if (!stdin.isTTY) return undefined
  const enquirer = new (Enquirer as unknown as new (o: object) => { prompt(q: unknown[]): Promise<Record<string, unknown>>; on(e: string, f: (p: unknown) => void): void })({ stdin, stdout: cmd.context.stderr })
  if (promptHooks.onPrompt) enquirer.on('prompt', promptHooks.onPrompt)
  return enquirer
}

/** A password prompt on the terminal, asked twice when it creates something. */
export async function passwordPrompt(cmd: FormCommand, confirm: boolean): Promise<((purpose: string) => Promise<string>) | undefined> {
  const enquirer = await terminalPrompts(cmd)
  if (!enquirer) return undefined
  return async (purpose) => {
    const { password } = (await enquirer.prompt([{ type: 'password', name: 'password', message: `Password to ${purpose}` }])) as { password: string }
    if (!password) throw new FormError('PASSWORD_EMPTY', 'the password is empty')
    if (confirm) {
      const { again } = (await enquirer.prompt([{ type: 'password', name: 'again', message: 'Repeat the password' }])) as { again: string }
      if (again !== password) throw new FormError('PASSWORD_MISMATCH', 'the two passwords differ', { hint: 'run the command again' })
    }
    return password
  }
}
