import { Command, Option } from 'clipanion'
import { DeveloperCommand } from '../../manage/index.js'

export class PackBuildCommand extends DeveloperCommand {
  static override paths = [['pack', 'build']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Build the Formfile into a VM image on a node',
    details: `Validates the Formfile, packs the build context (the Formfile's directory, honouring .formignore; symbolic links and paths that leave the context are refused before anything is sent) as a tar.gz, uploads it signed by your wallet, and requests the build in state. Then it follows the build: the upload, the queue, the base image, one line per Formfile step (cached or ran, and its time) and the image. Without a terminal it prints plain lines.

Ctrl-C stops following, not the build; \`form pack status\` shows it later and \`form pack cancel\` stops it. The Formfile (with its password hashes) goes to the building node only, never into the replicated state.`,
    examples: [
      ['Build ./Formfile on the local node', '$0 pack build'],
      ['Build on a remote node and return at once', '$0 pack build --node http://10.0.0.1:3004 --detach'],
      ['Another Formfile, result as JSON', '$0 pack build -f deploy/Formfile --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile); its directory is the build context' })
  detach = Option.Boolean('--detach', false, { description: 'Print the build id once the build is requested, and return' })
  maxContextMb = Option.String('--max-context-mb', '512', { description: 'Refuse a build context larger than this (MiB)' })
  profile = Option.String('--profile', { description: 'Resource limit profile to validate against: default or devnet' })

  async run() {
    return (await import('./run/build.js')).packBuild(this)
  }
}
