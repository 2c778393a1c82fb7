import t from 'tap'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp } from '../../plugins/state/lib/op.js'
import { linkPlugin, makeEnv, ROOT, startNode } from '../helpers/form.js'
import { api } from '../helpers/network.js'
import { join } from 'node:path'

t.test('a third-party plugin declares a collection; every value is checked against its schema', async (t) => {
  const fe = await makeEnv(t)
  // the plugin template declares `hello`: hello/<address>/<name> = {text: string}
  await linkPlugin(fe, 'form-plugin-hello', join(ROOT, 'templates', 'plugin'))
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const dev = authorFromKeys(generateAuthorKeys())
  const other = authorFromKeys(generateAuthorKeys())
  const ts = { ms: Date.now(), n: 0 }
  const r = await api(fe).post<{ accepted: number; rejected: { index: number; code: string; message: string }[] }>('/v1/state/ops', {
    ops: [
      createOp(dev, 'hello', `${dev.address}/hi`, { text: 'hello' }, ts),
      createOp(dev, 'hello', `${dev.address}/bad`, { text: 42 }, ts),
      createOp(other, 'hello', `${dev.address}/theirs`, { text: 'not mine' }, ts),
      createOp(dev, 'nodes', dev.address, { heartbeat: 'soon' }, ts),
    ],
  })
  t.equal(r.accepted, 1, 'the well-formed greeting is stored')
  t.match(r.rejected, [
    { index: 1, code: 'OP_MALFORMED', message: /does not fit a wallet writes its greetings.*text/ },
    { index: 2, code: 'OP_UNAUTHORIZED', message: /may not write hello\// },
    { index: 3, code: 'OP_MALFORMED', message: /heartbeat/ },
  ])
  const records = (await api(fe).get<{ records: { key: string }[] }>('/v1/state/records/hello')).records
  t.same(records.map((x) => x.key), [`${dev.address}/hi`], 'nothing else was stored')
})
