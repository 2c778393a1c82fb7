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
    const config = await this.userConfig()
    this.buildId ??= await (await (await import('../../pack/index.js')).loadFormfiles()).formfileBuildId(this, config.address, this.file)
    const { views } = await this.instances(config)
    const { selectInstances } = await (await import('../../instances/index.js')).loadInstanceViews()
    const replicas = selectInstances(views, { buildId: this.buildId })
      .filter((v) => v.desired!.state !== 'deleted')
      .map((v) => ({ id: v.id, name: v.desired!.name, node: v.host ?? v.desired!.node, state: v.observed?.state ?? 'unreported', ip: v.observed?.state === 'deleted' ? null : (v.observed?.ip ?? null) }))
    this.print({ buildId: this.buildId, replicas }, () => {
      const lines = replicas.filter((r) => r.ip).map((r) => r.ip!)
      return lines.length ? lines.join('\n') : `no replica of build ${this.buildId} has an address yet (${replicas.map((r) => `${r.id}: ${r.state}`).join(', ') || 'none'})`
    })
    return replicas.some((r) => r.ip) ? 0 : 1
  }
}
