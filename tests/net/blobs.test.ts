import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import got from 'got'
import { createClient } from '../../core/client.js'
import { makeEnv, startNode, type FormEnv } from '../helpers/form.js'

const upload = async (fe: FormEnv, data: Buffer) =>
  JSON.parse((await got.post(`http://unix:${fe.socket}:/v1/net/blobs`, { enableUnixSockets: true, body: data })).body) as { hash: string; size: number }

t.test('a blob provided on one node is found through the DHT and fetched, verified, by another', async (t) => {
  const a = await makeEnv(t)
  const nodeA = await startNode(a)
  t.teardown(() => nodeA.stop('SIGKILL'))
  const boot = (await createClient({ socket: a.socket }).get<{ multiaddrs: string[] }>('/v1/net/p2p')).multiaddrs[0]
  const b = await makeEnv(t, { FORM_BOOTSTRAP: boot })
  const c = await makeEnv(t, { FORM_BOOTSTRAP: boot })
  const nodeB = await startNode(b)
  t.teardown(() => nodeB.stop('SIGKILL'))
  const nodeC = await startNode(c)
  t.teardown(() => nodeC.stop('SIGKILL'))
  await new Promise((r) => setTimeout(r, 1500)) // let the routing tables fill

  const data = randomBytes(1_500_000)
  const put = await upload(a, data)
  t.equal(put.hash, createHash('sha256').update(data).digest('hex'))
  const fetched = await createClient({ socket: c.socket }).post<{ path: string; size: number; provider: string }>(`/v1/net/blobs/${put.hash}/fetch`)
  t.equal(fetched.size, data.length)
  t.ok(fetched.provider, 'it came from a provider found in the DHT')
  t.ok((await readFile(fetched.path)).equals(data), 'the content is identical')

  // a size limit below the blob's size refuses it
  const small = await upload(a, randomBytes(5000))
  await t.rejects(createClient({ socket: b.socket }).post(`/v1/net/blobs/${small.hash}/fetch?max_bytes=1000`), { code: 'BLOB_UNAVAILABLE', message: /BLOB_TOO_LARGE|limit is 1000/ })

  // a provider whose copy is corrupted: the transfer is refused and nothing is stored
  const bad = await upload(a, randomBytes(300_000))
  const onDisk = join(a.dir, 'data', 'blobs', 'sha256', bad.hash)
  const tampered = await readFile(onDisk)
  tampered[1234] ^= 0xff
  await writeFile(onDisk, tampered)
  await t.rejects(createClient({ socket: b.socket }).post(`/v1/net/blobs/${bad.hash}/fetch`), { code: 'BLOB_UNAVAILABLE', message: /whose SHA-256 is [0-9a-f]{64}, not/ })
  await t.rejects(access(join(b.dir, 'data', 'blobs', 'sha256', bad.hash)), { code: 'ENOENT' }, 'the corrupt content was not kept')
})
