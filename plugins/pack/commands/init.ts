import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class PackInitCommand extends FormCommand {
  static override paths = [['pack', 'init']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Write a Formfile (and sample files) from a template',
    details: 'Templates: static-nginx (a static site served by nginx), python-web (a Python HTTP app), node-web (a Node.js HTTP app), hello-web (a Perl HTTP page that installs nothing), docker-compose (docker and a compose project started at boot; a slow build: docker.io is large). The USER gets your SSH public key (`--ssh-key`, else ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub). Existing files are never overwritten without `--force`.',
    examples: [
      ['A static site in the current directory', '$0 pack init'],
      ['A Python app in ./api with a given key', '$0 pack init --template python-web --dir api --ssh-key ~/.ssh/work.pub'],
      ['List the templates', '$0 pack init --list'],
    ],
  })
  template = Option.String('--template,-t', 'static-nginx', { description: 'Template name' })
  dir = Option.String('--dir', '.', { description: 'Where to write the files' })
  sshKey = Option.String('--ssh-key', { description: 'SSH public key file for the Formfile USER' })
  force = Option.Boolean('--force', false, { description: 'Overwrite existing files' })
  list = Option.Boolean('--list', false, { description: 'List the templates and exit' })

  async run() {
    return (await import('./run/init.js')).packInit(this)
  }
}
