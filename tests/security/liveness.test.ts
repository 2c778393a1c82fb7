import t from 'tap'
import { planShip } from '../../plugins/pack/lib/ship.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import type { StateRecord } from '../../plugins/state/index.js'
import { admit, until, type FormEnv } from '../helpers/form.js'
import { api, heartbeatsAfter, liveness, startNetwork } from '../helpers/network.js'

const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 5000\n'
const records = async (fe: FormEnv, c: string) => (await api(fe).get<{ records: StateRecord[] }>(`/v1/state/records/${c}`)).records
const HUGE = { vcpus: 4096, memoryMb: 2 ** 31, diskGb: 1_000_000 }

t.test('a node record with huge capacity and heartbeat 8.64e15 gets no replica and is not alive', async (t) => {
  const net = await startNetwork(t, 2, FAST)
  const [a, b] = net.envs
  // a stranger: any wallet may sign a record for itself
  const stranger = authorFromKeys(generateAuthorKeys())
  const forever = createOp(stranger, 'nodes', stranger.address, { capacity: HUGE, heartbeat: 8.64e15 }, { ms: Date.now(), n: 0 })
  t.equal((await api(a).post<{ accepted: number }>('/v1/state/ops', { ops: [forever] })).accepted, 1, 'a valid operation: stored')
  // a member that writes the same lie once, then goes silent
  const member = authorFromKeys(generateAuthorKeys())
  await admit(a, member.address)
  const lie = createOp(member, 'nodes', member.address, { capacity: HUGE, heartbeat: 8.64e15 }, { ms: Date.now(), n: 0 })
  t.equal((await api(b).post<{ accepted: number }>('/v1/state/ops', { ops: [lie] })).accepted, 1)
  await until('the member\'s record on both nodes', async () => {
    for (const fe of net.envs) if (!(await records(fe, 'nodes')).some((r) => r.key === member.address)) return undefined
    return true
  })

  for (const [i, fe] of net.envs.entries()) {
    t.notOk((await records(fe, 'nodes')).some((r) => r.key === stranger.address), `node ${i + 1}: the stranger's node record counts nowhere`)
    const l = await liveness(fe)
    t.notOk(stranger.address in l.seen, `node ${i + 1}: the stranger is not alive`)
    t.ok(l.seen[member.address] <= l.now, `node ${i + 1}: the member is alive since its record arrived (${l.now - l.seen[member.address]} ms ago), not until 8.64e15`)
  }

  // what form pack ship computes, from what node 1 serves it, once the member's record is older than the failover window
  const failoverMs = 3000
  await new Promise((r) => setTimeout(r, failoverMs + 500))
  await heartbeatsAfter(a, net.addresses, Date.now())
  const l = await liveness(a)
  const plan = planShip({
    owner: stranger.address,
    build: 'b'.repeat(64),
    name: 'web',
    image: 'c'.repeat(64),
    resources: { vcpus: 1, memoryMb: 256, diskGb: 1 },
    replicas: 3,
    failoverMs,
    imageHolders: [],
    nodes: await records(a, 'nodes'),
    instances: await records(a, 'instances'),
    seen: new Map(Object.entries(l.seen)),
    now: l.now,
  })
  t.same(plan.placement.nodes.sort(), [...net.addresses].sort(), 'replicas land on the two live member nodes only')
  t.equal(plan.placement.unplaced, 1, 'the third replica has nowhere to go')
  t.notOk(plan.placement.ranked.includes(stranger.address) || plan.placement.ranked.includes(member.address), 'neither the stranger nor the silent member is a candidate')
  t.match(plan.placement.skipped, [{ node: member.address, reason: /no heartbeat for \d+s/ }], 'the silent member is skipped as gone, whatever its record says')

  // a killed node stops being alive on the others, by their clocks
  await net.nodes[1].stop('SIGKILL')
  const before = (await liveness(a)).seen[net.addresses[1]]
  await heartbeatsAfter(a, [net.addresses[0]], Date.now())
  await heartbeatsAfter(a, [net.addresses[0]], Date.now())
  t.equal((await liveness(a)).seen[net.addresses[1]], before, 'node 2 is no longer heard from once killed')
})
