import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { flagHelp } from '../../../core/settings.js'
import { netSettings } from '../../net/index.js'
import { nodeSettings } from '../lib/settings.js'

/**
 * The flags and variables that override one declared setting each: their help comes from that
 * declaration and run/start.ts checks their values with its validator, so neither is a second copy.
 */
export const OVERRIDES = {
  listen: { flag: '--listen', env: 'FORM_LISTEN', setting: netSettings.listen, key: '[net] listen' },
  bootstrap: { flag: '--bootstrap', env: 'FORM_BOOTSTRAP', setting: netSettings.bootstrap, key: '[net] bootstrap' },
  apiListen: { flag: '--api-listen', env: 'FORM_API_LISTEN', setting: nodeSettings.api_listen, key: '[node] api_listen' },
} as const

const help = (o: (typeof OVERRIDES)[keyof typeof OVERRIDES]) => flagHelp(o.setting, ` (repeatable; env ${o.env}, comma-separated; overrides ${o.key})`, false)

export class NodeStartCommand extends FormCommand {
  static override paths = [['node', 'start']]
  static override usage = Command.Usage({
    category: 'Node',
    description: 'Run a Formation node: every plugin service, and the node API',
    details: `
      Starts the services of every plugin in dependency order (state, p2p, sync, formnet, vmm, builder, ...) and serves the local API on a Unix socket in the runtime directory. With no operator config this is a complete one-node devnet. SIGINT or SIGTERM stops the services in reverse order.

      Several nodes can run on one machine when each has its own \`--data-dir\` and \`--runtime-dir\`.

      A node joins another operator's network by naming its genesis admins (\`[state] admins\`, or FORM_ADMINS, comma-separated addresses) and bootstrapping from one of its nodes; it then waits for an admin to run \`form node admit <its address>\` (\`form node status\` shows the command).
    `,
    examples: [
      ['Run a one-node devnet in the foreground', '$0 node start'],
      ['Run in the background, with a pid file and a log file', '$0 node start --detach'],
      ['Use an operator config', '$0 node start --config /etc/form/operator.toml'],
      ['A second node beside the first', '$0 node start --data-dir /tmp/n2 --runtime-dir /tmp/n2/run --detach'],
      ['Let developers on other machines reach this node (form manage join)', '$0 node start --api-listen 0.0.0.0:3004'],
      ['Join the network whose admin is 0x11…11', 'FORM_ADMINS=0x1111111111111111111111111111111111111111 $0 node start --bootstrap /ip4/192.168.1.10/tcp/3010/p2p/12D3Koo...'],
    ],
  })
  detach = Option.Boolean('--detach,-d', false, { description: 'Run in the background; print the pid once the node answers' })
  listen = Option.Array('--listen', { description: help(OVERRIDES.listen) })
  bootstrap = Option.Array('--bootstrap', { description: help(OVERRIDES.bootstrap) })
  apiListen = Option.Array('--api-listen', { description: help(OVERRIDES.apiListen) })

  async run() {
    return (await import('./run/start.js')).nodeStart(this)
  }
}
