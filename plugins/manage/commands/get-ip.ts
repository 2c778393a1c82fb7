import { Command, Option } from 'clipanion'
import { InstanceCommand } from './shared.js'

export class ManageGetIpCommand extends InstanceCommand {
  static override paths = [['manage', 'get-ip']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: "The formnet addresses of a build's instances (every replica)",
    details: 'Prints one address per line (or, with --json, every replica with its node and state). An instance whose node has not given it an address yet is listed in --json with ip null.',
    examples: [
      ['The addresses of the build of ./Formfile', '$0 manage get-ip'],
      ['The addresses of a build', '$0 manage get-ip --build-id 3f9c...'],
      ['SSH into the first replica', 'ssh root@$($0 manage get-ip --build-id 3f9c... | head -n1)'],
    ],
  })
  buildId = Option.String('--build-id', { description: 'The build whose instances to look up (default: the build of ./Formfile)' })
  file = Option.String('-f,--file', { description: 'The Formfile whose build is meant (default ./Formfile)' })

  async run() {
    return (await import('./run/get-ip.js')).manageGetIp(this)
  }
}
