import { Command, Option } from 'clipanion'
import { DeveloperCommand } from './shared.js'

export class ManageFormnetUpCommand extends DeveloperCommand {
  static override paths = [['manage', 'formnet-up']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Bring this machine\'s formnet interface up and keep it in sync with the network',
    details: `
      Creates the WireGuard interface (the kernel's, else wireguard-go; needs root), gives it the address from \`form manage join\` (a /32), and then asks the node for the list of nodes every few seconds, updates the peers and routes each node's subnet through the interface. Only subnets inside the formnet range are routed, and never one that overlaps this machine's own addresses, routes or DNS resolvers (it is logged and left out instead), so formnet never takes traffic this machine sends elsewhere. Where systemd-resolved runs, \`.fog\` names are sent to the admitting node's DNS (\`resolvectl dns <interface> <node>\` and \`resolvectl domain <interface> ~fog\`; the log says what was done), so \`ssh dev@hello-web-1.fog\` works from this machine. Runs in the foreground (for systemd) until SIGINT/SIGTERM, then removes the interface. \`--detach\` runs it in the background with a pid file; stop it with \`form manage formnet-down\`.
    `,
    examples: [
      ['In the foreground', 'sudo $0 manage formnet-up'],
      ['In the background', 'sudo $0 manage formnet-up --detach'],
    ],
  })
  detach = Option.Boolean('--detach,-d', false, { description: 'Run in the background; returns once the interface is up and synced' })
  interval = Option.String('--interval-ms', '5000', { description: 'How often to fetch the node list' })
  driver = Option.String('--driver', 'auto', { description: 'WireGuard implementation: auto, kernel or userspace' })

  async run() {
    return (await import('./run/formnet-up.js')).manageFormnetUp(this)
  }
}
