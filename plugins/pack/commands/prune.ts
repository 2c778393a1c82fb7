import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'

export class PackPruneCommand extends FormCommand {
  static override paths = [['pack', 'prune']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: "Free the builder's disk: unused contexts, step layers and images",
    details: `Removes from the local node's builder everything no build holds: uploaded contexts and build requests no queued build needs, the step cache and the cached images. A running build keeps the whole step cache. The Debian base stays unless --all (making it again takes minutes). Without this command the builder evicts least recently used items on its own above \`[pack] cache_max_gb\`; \`form node status\` shows what the cache holds.

Talks to the local node only (operator action over its Unix socket).`,
    examples: [
      ['Free what no build needs', '$0 pack prune'],
      ['The Debian base too, as JSON', '$0 pack prune --all --json'],
    ],
  })
  all = Option.Boolean('--all', false, { description: 'Remove the cached Debian base too' })

  async run() {
    return (await import('./run/prune.js')).packPrune(this)
  }
}
