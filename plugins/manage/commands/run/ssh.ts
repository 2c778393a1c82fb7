import { spawn } from 'node:child_process'
import { FormError } from '../../../../core/errors.js'
import { HEX64 } from '../../../../core/patterns.js'
import { loadInstanceViews } from '../../../instances/index.js'
import { loadBuildRecords } from '../../../pack/index.js'
import { trustHostKeys } from '../../lib/known-hosts.js'
import type { ManageSshCommand } from '../ssh.js'

export async function manageSsh(cmd: ManageSshCommand) {
  const config = await cmd.userConfig()
  const { client, views } = await cmd.instances(config)
  const { selectInstances } = await loadInstanceViews()
  const byBuild = HEX64.test(cmd.target)
  const chosen = selectInstances(views, byBuild ? { buildId: cmd.target } : { instance: cmd.target }).filter((v) => v.desired!.state !== 'deleted')
  const running = chosen.filter((v) => v.observed?.state === 'running' && v.observed.ip)
  const view = running[0]
  if (!view) {
    const states = chosen.map((v) => `${v.id}: ${v.observed?.state ?? 'unreported'}`).join(', ')
    throw new FormError('INSTANCE_NOT_RUNNING', `${byBuild ? `no replica of build ${cmd.target}` : `instance ${cmd.target}`} is running${states ? ` (${states})` : ''}`, {
      hint: 'start it with `form manage start`, or see why with `form manage list` and `form manage logs`',
    })
  }
  let user = cmd.user
  if (!user) {
    const { readBuild } = await loadBuildRecords()
    const build = view.desired!.buildId ? await readBuild(client, config.address, view.desired!.buildId).catch(() => undefined) : undefined
    user = build?.status?.users?.[0] ?? 'root'
  }
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user)) throw new FormError('USAGE', `--user "${user}" is not a user name`)
  const ip = view.observed!.ip!
  const hostKeys = view.observed!.hostKeys ?? []
  const trust: string[] = []
  if (hostKeys.length) {
    // the keys the guest told its node on the console: ssh checks strictly, never asks
    const file = await trustHostKeys(cmd.dirs.configDir, ip, hostKeys)
    trust.push('-o', `UserKnownHostsFile=${file}`, '-o', 'StrictHostKeyChecking=yes')
  } else if (!cmd.json) {
    cmd.context.stderr.write(`note: the node reported no SSH host keys for ${view.id} (an image built before host keys were reported); ssh asks you to trust the key it is shown\n`)
  }
  const args = [...trust, ...(cmd.identity ? ['-i', cmd.identity] : []), ...(cmd.sshOptions ?? []).flatMap((o) => ['-o', o]), `${user}@${ip}`, ...cmd.command]
  if (cmd.json) {
    cmd.print({ instance: view.id, node: view.host, ip, user, hostKeys, command: ['ssh', ...args] }, '')
    return 0
  }
  const child = spawn('ssh', args, { stdio: 'inherit' })
  return await new Promise<number>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new FormError('SSH_MISSING', 'there is no ssh command on this machine', { hint: 'install an OpenSSH client (Debian: apt-get install openssh-client)' }) : error),
    )
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}
