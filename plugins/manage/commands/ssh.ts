import { Command, Option } from 'clipanion'
import { FormError } from '../../../core/errors.js'
import { InstanceCommand } from './shared.js'
import { HEX64 } from '../../../core/patterns.js'

export class ManageSshCommand extends InstanceCommand {
  static override paths = [['manage', 'ssh']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'SSH into a running instance over formnet',
    details: [
      'Runs `ssh <user>@<formnet address>` for one of your instances: name it (id or name), or give a build id for its first running replica. The user is --user, else the first USER of the build\'s Formfile, else root. Your machine must be on formnet (`form manage join`, then `form manage formnet-up`), and the key must be one of the USER\'s ssh_authorized_keys.',
      "The instance's SSH host keys are those its guest reported to its node at boot (on the console, which only the guest writes): they are kept in a known_hosts file of the CLI's own (`known_hosts` in the config directory) and ssh runs with StrictHostKeyChecking=yes, so the first connection is verified too. A replica that is recreated at the same address replaces its old keys there.",
      'Arguments after the instance are the remote command. With --json, prints the address, user, host keys and ssh command instead of running it.',
    ].join('\n\n'),
    examples: [
      ['A shell on a replica', '$0 manage ssh web-1'],
      ['The first running replica of a build, with a key', '$0 manage ssh 3f9c... -i ~/.ssh/id_ed25519'],
      ['Run one command', '$0 manage ssh web-2 -- systemctl status web'],
    ],
  })
  target = Option.String({ name: 'instance|build-id' })
  command = Option.Rest({ name: 'command' })
  user = Option.String('--user,-l', { description: 'Remote user (default: the first USER of the Formfile)' })
  identity = Option.String('-i,--identity', { description: 'Private key file given to ssh' })
  sshOptions = Option.Array('-o', { description: 'An ssh option (-o Key=Value), may repeat' })

  async run() {
    const config = await this.userConfig()
    const { client, views } = await this.instances(config)
    const { selectInstances } = await (await import('../../instances/index.js')).loadInstanceViews()
    const byBuild = HEX64.test(this.target)
    const chosen = selectInstances(views, byBuild ? { buildId: this.target } : { instance: this.target }).filter((v) => v.desired!.state !== 'deleted')
    const running = chosen.filter((v) => v.observed?.state === 'running' && v.observed.ip)
    const view = running[0]
    if (!view) {
      const states = chosen.map((v) => `${v.id}: ${v.observed?.state ?? 'unreported'}`).join(', ')
      throw new FormError('INSTANCE_NOT_RUNNING', `${byBuild ? `no replica of build ${this.target}` : `instance ${this.target}`} is running${states ? ` (${states})` : ''}`, {
        hint: 'start it with `form manage start`, or see why with `form manage list` and `form manage logs`',
      })
    }
    let user = this.user
    if (!user) {
      const { readBuild } = await (await import('../../pack/index.js')).loadBuildRecords()
      const build = view.desired!.buildId ? await readBuild(client, config.address, view.desired!.buildId).catch(() => undefined) : undefined
      user = build?.status?.users?.[0] ?? 'root'
    }
    if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(user)) throw new FormError('USAGE', `--user "${user}" is not a user name`)
    const ip = view.observed!.ip!
    const hostKeys = view.observed!.hostKeys ?? []
    const trust: string[] = []
    if (hostKeys.length) {
      // the keys the guest told its node on the console: ssh checks strictly, never asks
      const { trustHostKeys } = await import('../lib/known-hosts.js')
      const file = await trustHostKeys(this.dirs.configDir, ip, hostKeys)
      trust.push('-o', `UserKnownHostsFile=${file}`, '-o', 'StrictHostKeyChecking=yes')
    } else if (!this.json) {
      this.context.stderr.write(`note: the node reported no SSH host keys for ${view.id} (an image built before host keys were reported); ssh asks you to trust the key it is shown\n`)
    }
    const args = [...trust, ...(this.identity ? ['-i', this.identity] : []), ...(this.sshOptions ?? []).flatMap((o) => ['-o', o]), `${user}@${ip}`, ...this.command]
    if (this.json) {
      this.print({ instance: view.id, node: view.host, ip, user, hostKeys, command: ['ssh', ...args] }, '')
      return 0
    }
    const { spawn } = await import('node:child_process')
    const child = spawn('ssh', args, { stdio: 'inherit' })
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'ENOENT' ? new FormError('SSH_MISSING', 'there is no ssh command on this machine', { hint: 'install an OpenSSH client (Debian: apt-get install openssh-client)' }) : error),
      )
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
    })
  }
}
