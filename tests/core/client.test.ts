import t from 'tap'
import { createServer } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClient } from '../../core/client.js'

t.test('each request has its own connection, so no request can go out on an idle socket the node is closing', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'form-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const socket = join(dir, 'api.sock')
  let connections = 0
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => res.end(JSON.stringify({ n: connections })))
  })
  server.on('connection', () => connections++)
  // the server keeps idle connections (5 s, like the node's), which a keep-alive client would reuse
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const client = createClient({ socket })
  const answers: number[] = []
  for (let i = 0; i < 20; i++) answers.push((await client.get<{ n: number }>('/x')).n)
  t.same(answers, Array.from({ length: 20 }, (_, i) => i + 1), 'request i arrived on connection i')
  await client.post('/y', { a: 1 })
  t.equal(connections, 21, 'a POST opens its own as well')
})
