import { Command, Option } from 'clipanion'
import { DeveloperCommand } from './shared.js'

/**
 * The caller's own `.fog` names (collection `dns`, `dns/<owner>/<name>`): served by every node's
 * DNS to the owner's instances and formnet peers only, beside the replica and build names.
 */
export abstract class DnsCommand extends DeveloperCommand {}

export class ManageDnsSetCommand extends DnsCommand {
  static override paths = [['manage', 'dns', 'set']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Publish a .fog name of your own (A or TXT records)',
    details: "The name is answered by every node's DNS to your instances and formnet peers only, as `<name>.fog`; it wins over a replica or build of the same name. Setting a name again replaces it.",
    examples: [
      ['Point api.fog at two addresses', '$0 manage dns set api --a 198.18.0.10 --a 198.18.1.12'],
      ['A TXT record with a 5-minute TTL', '$0 manage dns set version --txt v2 --ttl 300'],
    ],
  })
  name = Option.String({ name: 'name' })
  a = Option.Array('--a', [], { description: 'An IPv4 address the name answers (repeatable, at most 24)' })
  txt = Option.Array('--txt', [], { description: 'A TXT string (repeatable, at most 8 of 255 bytes)' })
  ttl = Option.String('--ttl', '60', { description: 'Seconds resolvers may cache the answer (0 to 86400)' })

  async run() {
    return (await import('./run/dns.js')).manageDnsSet(this)
  }
}

export class ManageDnsListCommand extends DnsCommand {
  static override paths = [['manage', 'dns', 'list']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'List the .fog names you published',
    details: 'Only the names of `form manage dns set`; replicas (`<instance>.fog`) and builds (`<build>.fog`) are named by state and need no record.',
    examples: [['Your names', '$0 manage dns list'], ['As JSON', '$0 manage dns list --json']],
  })

  async run() {
    return (await import('./run/dns.js')).manageDnsList(this)
  }
}

export class ManageDnsRmCommand extends DnsCommand {
  static override paths = [['manage', 'dns', 'rm']]
  static override usage = Command.Usage({
    category: 'Manage',
    description: 'Remove a .fog name you published',
    examples: [['Remove api.fog', '$0 manage dns rm api']],
  })
  name = Option.String({ name: 'name' })

  async run() {
    return (await import('./run/dns.js')).manageDnsRm(this)
  }
}
