import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class StateListCommand extends FormCommand {
  static override paths = [['state', 'list']]
  static override usage = Command.Usage({
    category: 'State',
    description: 'List the records of a collection',
    details: 'Collections: accounts, nodes, cidrs, peers, builds, instances, dns. Pages through the whole collection unless `--limit` is given.',
    examples: [
      ['Every node of the network', '$0 state list nodes'],
      ['The instances of one owner, as JSON', '$0 state list instances --prefix 0xabc.../ --json'],
    ],
  })
  collection = Option.String({ required: true })
  prefix = Option.String('--prefix', { description: 'Only keys that start with this' })
  limit = Option.String('--limit', { description: 'At most this many records' })
  deleted = Option.Boolean('--deleted', false, { description: 'Include deleted records' })

  async run() {
    return (await import('./run/list.js')).stateList(this)
  }
}
