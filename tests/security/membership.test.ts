import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { form, joinEnv, makeEnv, startNode, stateAddress, until, type FormEnv } from '../helpers/form.js'
import { api, heartbeatsAfter, liveness, startNetwork } from '../helpers/network.js'

const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 5000\n'
const nodeKeys = async (fe: FormEnv) => (await api(fe).get<{ records: { key: string }[] }>('/v1/state/records/nodes')).records.map((r) => r.key)

t.test('a node waits for admission, says so with the command to run, and counts once admitted', async (t) => {
  const net = await startNetwork(t, 2, FAST)
  const [a] = net.envs
  // a third node joins the network (same admins) but nobody admitted it
  const c = await makeEnv(t, { ...(await joinEnv(a)), FORM_BOOTSTRAP: net.boot })
  await writeFile(join(c.configDir, 'operator.toml'), FAST)
  const node = await startNode(c)
  t.teardown(() => node.stop('SIGKILL'))
  const address = await stateAddress(c)

  const status = await form(c, ['node', 'status'])
  t.match(status.stdout, `network: waiting for admission: on an admin's node run \`form node admit ${address}\``, 'form node status names the command')
  t.match(await readFile(c.logFile, 'utf8'), `waiting for admission: on an admin's node run \`form node admit ${address}\``, 'and so does the log')
  // it writes its records (its own view has them), the members ignore them
  t.ok((await nodeKeys(c)).includes(address), 'the waiting node sees its own record')
  await new Promise((r) => setTimeout(r, 3000))
  for (const fe of net.envs) {
    t.notOk((await nodeKeys(fe)).includes(address), 'the members ignore its node record')
    t.notOk(address in (await liveness(fe)).seen, 'and it is not alive to them')
  }

  // a non-admin node cannot admit
  const refused = await form(net.envs[1], ['node', 'admit', address])
  t.not(refused.code, 0)
  t.match(refused.stderr, /is not an admin of the network/)

  // the admin admits it with the CLI
  const admitted = await form(a, ['node', 'admit', address, '--json'])
  t.equal(admitted.code, 0, admitted.stderr)
  t.match(JSON.parse(admitted.stdout), { address, status: 'admitted', member: true })
  await until('every node to count the new member', async () => {
    for (const fe of [...net.envs, c]) if (!(await nodeKeys(fe)).includes(address)) return undefined
    return true
  })
  t.match((await form(c, ['node', 'status'])).stdout, /network: member of the network \(admission #3\)/, 'the new node says it is a member')
  const since = Date.now()
  for (const fe of [...net.envs, c]) await heartbeatsAfter(fe, [...net.addresses, address], since)
  t.pass('all three hear each other')
})
