import type { NodeClient } from '../../../../core/client.js'
import { FormError } from '../../../../core/errors.js'
import { loadInstanceViews } from '../../../instances/index.js'
import type { UserConfig } from '../../../kit/index.js'
import { ownerName, parseOwnerRecord } from '../../../net/index.js'
import type { Timestamp } from '../../../state/index.js'
import { loadOwnerOps } from '../../../state/index.js'
import type { DnsCommand, ManageDnsSetCommand, ManageDnsListCommand, ManageDnsRmCommand } from '../dns.js'

async function ownRecords(cmd: DnsCommand, config: UserConfig) {
  const client = await cmd.client({ url: cmd.nodeUrl(config) })
  const { listRecords } = await loadInstanceViews()
  return { client, records: await listRecords(client, 'dns', `${config.address}/`) }
}

/** Writes (or, with no record, deletes) the caller's name, signed by its wallet, over `previousT`. */
async function submit(cmd: DnsCommand, client: NodeClient, config: UserConfig, name: string, record: unknown, previousT: Timestamp | undefined) {
  await (await loadOwnerOps()).submitOwnerRecord(client, await cmd.signer(), 'dns', `${config.address}/${name}`, record, `the name ${name}.fog`, previousT)
}

async function checkedName(cmd: DnsCommand, name: string): Promise<string> {
  const n = ownerName(name)
  if (!n) throw new FormError('USAGE', `"${name}" is not a DNS name`, { hint: 'use letters, digits and hyphens in dot-separated labels, e.g. `api` (served as api.fog)' })
  return n
}

export async function manageDnsSet(cmd: ManageDnsSetCommand) {
  const config = await cmd.userConfig()
  const name = await checkedName(cmd, cmd.name)
  const parsed = parseOwnerRecord({ a: cmd.a, txt: cmd.txt, ttl: Number(cmd.ttl) })
  if ('problem' in parsed) throw new FormError('USAGE', parsed.problem.replace(/"(a|txt|ttl)"/g, '--$1'), { hint: 'e.g. `form manage dns set api --a 198.18.0.10`' })
  const { client, records } = await ownRecords(cmd, config)
  const previous = records.find((r) => r.key === `${config.address}/${name}`)
  await submit(cmd, client, config, name, parsed.record, previous?.t)
  cmd.print({ name: `${name}.fog`, ...parsed.record }, () => `${name}.fog set`)
  return 0
}

export async function manageDnsList(cmd: ManageDnsListCommand) {
  const config = await cmd.userConfig()
  const { records } = await ownRecords(cmd, config)
  const names = records.map((r) => {
    const parsed = parseOwnerRecord(r.value)
    return { name: `${r.key.slice(config.address.length + 1)}.fog`, ...('record' in parsed ? parsed.record : { problem: parsed.problem }) }
  })
  cmd.print(names, () => (names.length ? names.map((n) => `${n.name}\t${'problem' in n ? `not served: ${n.problem}` : [...n.a, ...n.txt.map((t) => JSON.stringify(t))].join(' ')}${'ttl' in n ? `\tttl ${n.ttl}` : ''}`).join('\n') : 'no names yet (`form manage dns set <name> --a <ip>`)'))
  return 0
}

export async function manageDnsRm(cmd: ManageDnsRmCommand) {
  const config = await cmd.userConfig()
  const name = await checkedName(cmd, cmd.name)
  const { client, records } = await ownRecords(cmd, config)
  const previous = records.find((r) => r.key === `${config.address}/${name}`)
  if (!previous) throw new FormError('DNS_NAME_UNKNOWN', `you have no name ${name}.fog`, { hint: '`form manage dns list` shows yours' })
  await submit(cmd, client, config, name, undefined, previous.t)
  cmd.print({ name: `${name}.fog`, removed: true }, () => `${name}.fog removed`)
  return 0
}
