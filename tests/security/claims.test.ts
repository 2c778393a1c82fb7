import t from 'tap'
import { formnetView, type RecordLike } from '../../plugins/net/lib/formnet/peers.js'
import { authorFromKeys, generateAuthorKeys, type Author } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { admit, form, until, type FormEnv } from '../helpers/form.js'
import { api, heartbeatsAfter, startNetwork } from '../helpers/network.js'

const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 5000\n'

const records = async (fe: FormEnv, c: string) => (await api(fe).get<{ records: RecordLike[] }>(`/v1/state/records/${c}`)).records
/** The subnets of formnet as a node routes them, from what its API serves. */
const subnets = async (fe: FormEnv) => formnetView(await records(fe, 'cidrs'), await records(fe, 'nodes'), await records(fe, 'peers')).subnets
const ownSubnet = async (fe: FormEnv) => (await api(fe).get<{ subnet: string }>('/v1/net/status')).subnet

/** A back-dated (t.ms = 0) claim of `subnet` by `author`, posted to the node of `fe`. */
async function backdatedClaim(fe: FormEnv, author: Author, subnet: string) {
  const op = createOp(author, 'cidrs', `${subnet.replace('/', '_')}/${author.address}`, { node: author.address, subnet }, { ms: 0, n: 0 })
  return api(fe).post<{ accepted: number; rejected: unknown[] }>('/v1/state/ops', { ops: [op] })
}

t.test('a back-dated subnet claim takes no subnet: not from a stranger, not from a later member', async (t) => {
  const net = await startNetwork(t, 2, FAST)
  const [a, b] = net.envs
  const victim = net.addresses[1]
  const subnet = await ownSubnet(b)
  await until('both nodes to route the victim\'s subnet to it', async () => {
    for (const fe of net.envs) if ((await subnets(fe)).get(victim) !== subnet) return undefined
    return true
  })

  // a stranger: a valid signed operation, stored, and ignored by every reader
  const stranger = authorFromKeys(generateAuthorKeys())
  t.equal((await backdatedClaim(a, stranger, subnet)).accepted, 1, 'the stranger\'s claim is a valid operation')
  // a member admitted after the victim, with the earliest possible timestamp
  const member = authorFromKeys(generateAuthorKeys())
  await admit(a, member.address)
  t.equal((await backdatedClaim(b, member, subnet)).accepted, 1, 'the later member\'s claim is stored too')

  await until('the member\'s claim on both nodes', async () => {
    for (const fe of net.envs) if (!(await records(fe, 'cidrs')).some((r) => r.author === member.address)) return undefined
    return true
  })
  for (const [i, fe] of net.envs.entries()) {
    const cidrs = await records(fe, 'cidrs')
    t.notOk(cidrs.some((r) => r.author === stranger.address), `node ${i + 1}: the stranger's claim counts nowhere`)
    const theirs = cidrs.find((r) => r.author === member.address)!
    const mine = cidrs.find((r) => r.author === victim)!
    t.ok(theirs.t.ms < mine.t.ms && theirs.rank! > mine.rank!, `node ${i + 1}: the member's claim is earlier by timestamp (${theirs.t.ms} < ${mine.t.ms}) but later by admission (${theirs.rank} > ${mine.rank})`)
    t.equal((await subnets(fe)).get(victim), subnet, `node ${i + 1} still routes ${subnet} to the victim`)
    t.notOk((await subnets(fe)).has(member.address), `node ${i + 1} routes nothing to the claimant`)
  }

  // the network keeps working: the victim keeps its subnet, heartbeats flow
  const since = Date.now()
  for (const fe of net.envs) await heartbeatsAfter(fe, net.addresses, since)
  t.equal(await ownSubnet(b), subnet, 'the victim\'s formnet service still holds its subnet')

  // revoking the member: its claim stops counting too (stored, ignored)
  const revoked = await form(a, ['node', 'revoke', member.address, '--json'])
  t.equal(revoked.code, 0, revoked.stderr)
  t.match(JSON.parse(revoked.stdout), { address: member.address, status: 'revoked', member: false })
  await until('the revoked member\'s claim to be ignored everywhere', async () => {
    for (const fe of net.envs) if ((await records(fe, 'cidrs')).some((r) => r.author === member.address)) return undefined
    return true
  })
  t.pass('a revoked member\'s claim counts nowhere')
})
