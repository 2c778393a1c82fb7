import { Command, Option } from 'clipanion'
import { BuildCommand } from './status.js'
import { FAILOVER_S, REPLICAS } from '../../instances/index.js'

export class PackShipCommand extends BuildCommand {
  static override paths = [['pack', 'ship']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Run redundant instances of a built image on the network',
    details: [
      `Writes the desired instances of your build (signed by your wallet): \`--replicas\` of them (default ${REPLICAS.default}, or \`ship.replicas\` in the CLI config: ~/.config/form/config.json, /etc/form/config.json as root), each on a different node. The scheduler picks live nodes (a heartbeat within --failover-after seconds) with room for the VCPU, MEM, DISK and GPU of the Formfile, nodes that already hold the image first; the same state gives the same placement.`,
      'Each replica also records the other fit nodes, best first: when its node misses heartbeats for --failover-after seconds, the next free one runs it (and gives it back when the node returns).',
      'Shipping again updates the replicas in place: a higher count adds replicas, a lower one deletes the last ones, and a new image replaces the old one (fresh disks). New and deleted replicas go at once. Running replicas that get a new image are replaced a few at a time (--strategy rolling, the default): --max-unavailable of them (default 1) are rebooted on the new image while the others keep serving the old one, and the next ones follow only once these run and pass their health checks. With 2 replicas on 2 nodes, one is replaced while the other serves, then the other.',
      'A replica that fails (its VM exits or panics, say: the ship ends at once, with the last lines of its console, which only you as its owner can read) or turns unhealthy (with the failing check and why) stops the rollout: the replicas not yet replaced keep running the old image, and the error names them. Fix the image and ship again to go on; ship the previous build to roll back. --strategy immediate writes every replica at once (every replaced replica is down while it reboots).',
      'Then shows each replica\'s node and state until all run and, when the image has health checks (HEALTHCHECK, or a TCP check for each EXPOSEd TCP port), pass them. Ctrl-C leaves what was written to the nodes (which restart an unhealthy replica with backoff); --detach writes everything at once and returns (with a rollout to do, only with --strategy immediate). `form manage list` shows them later. --json prints the replicas and the rollout steps (each with its replicas, time and result).',
    ].join('\n\n'),
    examples: [
      ['Ship the build of ./Formfile (3 replicas)', '$0 pack ship'],
      ['Two replicas, then print their addresses', '$0 pack ship --replicas 2 && form manage get-ip --build-id <id>'],
      ['Return once the records are written', '$0 pack ship --detach --json'],
      ['Ship a new image to 4 replicas, two at a time', '$0 pack ship --replicas 4 --max-unavailable 2'],
      ['Replace every replica at once (an outage while they reboot)', '$0 pack ship --strategy immediate'],
    ],
  })
  replicas = Option.String('--replicas', { description: `How many instances, each on its own node (default ${REPLICAS.default})` })
  failoverAfter = Option.String('--failover-after', { description: `Seconds without a heartbeat after which a node counts as gone and its replicas move (default ${FAILOVER_S.default}, or ship.failoverAfterS in the CLI config)` })
  detach = Option.Boolean('--detach', false, { description: 'Write the desired instances and return' })
  strategy = Option.String('--strategy', 'rolling', { description: 'How a new image replaces running replicas: rolling (a few at a time, each new one healthy before the next) or immediate (all at once: an outage)' })
  maxUnavailable = Option.String('--max-unavailable', { description: 'With --strategy rolling: how many replicas are replaced at a time (default 1: all but one keep serving)' })
  timeout = Option.String('--timeout', '900', { description: 'Seconds to wait for every replica to run: a last resort, since a replica that fails or turns unhealthy ends the ship at once' })

  async run() {
    return (await import('./run/ship.js')).packShip(this)
  }
}
