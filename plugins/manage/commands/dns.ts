import { Command, Option } from 'clipanion'
import type { NodeClient } from '../../../core/client.js'
import { FormError } from '../../../core/errors.js'
import type { UserConfig } from '../../kit/index.js'
import type { Timestamp } from '../../state/index.js'
import { DeveloperCommand } from './shared.js'

/**
 * The caller's own `.fog` names (collection `dns`, `dns/<owner>/<name>`): served by every node's
 * DNS to the owner's instances and formnet peers only, beside the replica and build names.
 */
abstract class DnsCommand extends DeveloperCommand {
  async records(config: UserConfig) {
    const client = await this.client({ url: this.nodeUrl(config) })
    const { listRecords } = await (await import('../../instances/index.js')).loadInstanceViews()
    return { client, records: await listRecords(client, 'dns', `${config.address}/`) }
  }

  /** Writes (or, with no record, deletes) the caller's name, signed by its wallet, over `previousT`. */
  async submit(client: NodeClient, config: UserConfig, name: string, record: unknown, previousT: Timestamp | undefined) {
    const { loadOwnerOps } = await import('../../state/index.js')
    await (await loadOwnerOps()).submitOwnerRecord(client, await this.signer(), 'dns', `${config.address}/${name}`, record, `the name ${name}.fog`, previousT)
  }

  async checkedName(name: string): Promise<string> {
    const { ownerName } = await import('../../net/index.js')
    const n = ownerName(name)
    if (!n) throw new FormError('USAGE', `"${name}" is not a DNS name`, { hint: 'use letters, digits and hyphens in dot-separated labels, e.g. `api` (served as api.fog)' })
    return n
  }
}

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
    const config = await this.userConfig()
    const name = await this.checkedName(this.name)
    const { parseOwnerRecord } = await import('../../net/index.js')
    const parsed = parseOwnerRecord({ a: this.a, txt: this.txt, ttl: Number(this.ttl) })
    if ('problem' in parsed) throw new FormError('USAGE', parsed.problem.replace(/"(a|txt|ttl)"/g, '--$1'), { hint: 'e.g. `form manage dns set api --a 198.18.0.10`' })
    const { client, records } = await this.records(config)
    const previous = records.find((r) => r.key === `${config.address}/${name}`)
    await this.submit(client, config, name, parsed.record, previous?.t)
    this.print({ name: `${name}.fog`, ...parsed.record }, () => `${name}.fog set`)
    return 0
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
    const config = await this.userConfig()
    const { records } = await this.records(config)
    const { parseOwnerRecord } = await import('../../net/index.js')
    const names = records.map((r) => {
      const parsed = parseOwnerRecord(r.value)
      return { name: `${r.key.slice(config.address.length + 1)}.fog`, ...('record' in parsed ? parsed.record : { problem: parsed.problem }) }
    })
    this.print(names, () => (names.length ? names.map((n) => `${n.name}\t${'problem' in n ? `not served: ${n.problem}` : [...n.a, ...n.txt.map((t) => JSON.stringify(t))].join(' ')}${'ttl' in n ? `\tttl ${n.ttl}` : ''}`).join('\n') : 'no names yet (`form manage dns set <name> --a <ip>`)'))
    return 0
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
    const config = await this.userConfig()
    const name = await this.checkedName(this.name)
    const { client, records } = await this.records(config)
    const previous = records.find((r) => r.key === `${config.address}/${name}`)
    if (!previous) throw new FormError('DNS_NAME_UNKNOWN', `you have no name ${name}.fog`, { hint: '`form manage dns list` shows yours' })
    await this.submit(client, config, name, undefined, previous.t)
    this.print({ name: `${name}.fog`, removed: true }, () => `${name}.fog removed`)
    return 0
  }
}
