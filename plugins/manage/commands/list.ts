import { Command, Option } from 'clipanion'
import { table } from '../../../core/output.js'
import { InstanceCommand } from './shared.js'

export class ManageListCommand extends InstanceCommand {
  static override paths = [['manage', 'list']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'List your instances: what you asked for and what their nodes report',
    details: `
      Reads the replicated state through your node: each instance's desired state (yours to change with \`form manage start|stop|delete\`) and the state its hosting node observed (pending, creating, booting, running, stopped, failed, deleted), with its formnet address.

      Deleted instances are left out once their node has reported them deleted (they stay in state as records); \`--all\` shows them too.
    `,
    examples: [
      ['Your instances', '$0 manage list'],
      ['Deleted ones too', '$0 manage list --all'],
      ['As JSON, for scripts', '$0 manage list --json'],
    ],
  })

  all = Option.Boolean('--all,-a', false, { description: 'Show deleted instances too' })

  async run() {
    const config = await this.userConfig()
    const { views: every } = await this.instances(config)
    // gone for good: deleted as asked, and its node says so (or no node ever reported it)
    const gone = (v: (typeof every)[number]) => v.desired!.state === 'deleted' && (v.observed === undefined || v.observed.state === 'deleted')
    const views = this.all ? every : every.filter((v) => !gone(v))
    const hidden = every.length - views.length
    const rows = views.map((v) => ({
      id: v.id,
      name: v.desired!.name,
      buildId: v.desired!.buildId,
      node: v.host ?? v.desired!.node,
      desired: v.desired!.state,
      state: v.observed?.state ?? 'unreported',
      ip: v.observed?.ip ?? null,
      reason: v.observed?.reason ?? null,
      backend: v.observed?.backend ?? null,
      updatedAt: v.observed?.updatedAt ?? null,
    }))
    const note = hidden ? `(${hidden} deleted instance${hidden === 1 ? '' : 's'} not shown; --all shows them)\n` : ''
    this.print({ owner: config.address, instances: rows, hiddenDeleted: hidden }, () => {
      if (!rows.length) return `no instances (ship a build with \`form pack ship\`)\n${note}`
      const lines = table(
        rows.map((r) => [r.id, r.name || '-', r.buildId.slice(0, 12) || '-', r.desired, r.state === 'failed' ? this.color('red', r.state) : r.state, r.ip ?? '-', `${r.node.slice(0, 10)}…`]),
        ['ID', 'NAME', 'BUILD', 'DESIRED', 'STATE', 'IP', 'NODE'],
      )
      return lines + rows.filter((x) => x.state === 'failed' && x.reason).map((r) => `${r.id}: ${r.reason}\n`).join('') + note
    })
  }
}
