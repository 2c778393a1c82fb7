import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { FORM_BIN, form, makeEnv, startNode } from '../helpers/form.js'
import { createClient } from '../../core/client.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'

t.test('a fresh one-node devnet lists its own node record; ops, watch and dump work over the API', async (t) => {
  const fe = await makeEnv(t)
  // what the node offers comes from [node.resources] when set (else it is measured on the host)
  await writeFile(join(fe.configDir, 'operator.toml'), '[node.resources]\nvcpus = 2\nmemory_mb = 4096\ndisk_gb = 50\n')
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))

  const list = await form(fe, ['state', 'list', 'nodes', '--json'])
  t.equal(list.code, 0, list.stderr)
  const records = JSON.parse(list.stdout).records
  t.equal(records.length, 1)
  const me = records[0]
  t.match(me.key, /^0x[0-9a-f]{40}$/)
  t.equal(me.author, me.key, 'the node signed its own record')
  t.match(me.value, { address: me.key, capacity: { vcpus: 2, memoryMb: 4096, diskGb: 50 } }, 'the record offers the configured [node.resources]')
  t.ok(Date.now() - me.value.heartbeat < 60_000, 'heartbeat is fresh')

  const human = await form(fe, ['state', 'get', 'nodes', me.key])
  t.match(human.stdout, `nodes/${me.key}  by ${me.key}`)

  // a developer's signed op submitted through the API, while a watcher follows the collection
  const dev = authorFromKeys(generateAuthorKeys())
  const watcher = spawn(process.execPath, [FORM_BIN, 'state', 'watch', 'dns', '--json'], { env: fe.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => watcher.kill())
  const lines = createInterface({ input: watcher.stdout! })[Symbol.asyncIterator]()
  const client = createClient({ socket: fe.socket })
  // The watcher is a new process: when its request reaches the node is unknown (a fixed sleep lost
  // the race on a busy machine, and the op went by unwatched). Write the record again, each time a
  // newer op, until the watch shows one.
  const first = lines.next()
  let op = createOp(dev, 'dns', `${dev.address}/www`, { ip: '10.1.0.5' }, { ms: Date.now(), n: 0 })
  let line: IteratorResult<string> | undefined
  for (let n = 0; n < 60 && !line; n++) {
    op = createOp(dev, 'dns', `${dev.address}/www`, { ip: '10.1.0.5' }, { ms: Date.now(), n })
    t.match(await client.post('/v1/state/ops', { ops: [op] }), { accepted: 1, rejected: [] })
    line = await Promise.race([first, new Promise<undefined>((r) => setTimeout(r, 500))])
  }
  const seen = JSON.parse(String(line?.value))
  t.match(seen, { collection: 'dns', key: `${dev.address}/www`, value: { ip: '10.1.0.5' }, author: dev.address })

  const forged = { ...op, val: { ip: '6.6.6.6' } }
  t.match(await client.post('/v1/state/ops', { ops: [forged] }), { accepted: 0, rejected: [{ code: 'OP_BAD_SIGNATURE' }] })
  t.match((await form(fe, ['state', 'get', 'dns', `${dev.address}/www`, '--json'])).stdout, /10\.1\.0\.5/)

  const dump = await form(fe, ['state', 'dump'])
  const ops = dump.stdout.trim().split('\n').map((l) => JSON.parse(l))
  t.ok(ops.some((o) => o.hash && o.op.c === 'dns'), 'dump has the dns op')
  t.ok(ops.some((o) => o.op.c === 'nodes'), 'and the heartbeat')

  const missing = await form(fe, ['state', 'get', 'dns', 'nope'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /error\[STATE_NOT_FOUND\]: no record dns\/nope/)
  await node.stop()

  // the identity survives a restart
  const again = await startNode(fe)
  t.teardown(() => again.stop('SIGKILL'))
  const after = JSON.parse((await form(fe, ['state', 'list', 'nodes', '--json'])).stdout).records
  t.same(after.map((r: { key: string }) => r.key), [me.key])
  await again.stop()
})
