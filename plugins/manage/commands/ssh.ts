import { Command, Option } from 'clipanion'
import { InstanceCommand } from './shared.js'

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
    return (await import('./run/ssh.js')).manageSsh(this)
  }
}
