import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile, access, open, stat } from 'node:fs/promises'
import { join } from 'node:path'
import got from 'got'
import { createClient } from '../../core/client.js'
import { writeSparse } from '../../plugins/net/lib/p2p/blobs.js'
import type { FormEnv } from '../helpers/form.js'
import { startNetwork } from '../helpers/network.js'

const upload = async (fe: FormEnv, data: Buffer) =>
  JSON.parse((await got.post(`http://unix:${fe.socket}:/v1/net/blobs`, { enableUnixSockets: true, body: data })).body) as { hash: string; size: number }

t.test('a blob provided on one node is found through the DHT and fetched, verified, by another', async (t) => {
  // blobs go to admitted members only (tests/security/blobs.test.ts): three members of one network
  const net = await startNetwork(t, 3)
  const [a, b, c] = net.envs
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

const MiB = 2 ** 20
/** A disk-image-like blob: data at the start, runs of zeros, data at unaligned offsets, zeros to the end. */
function sparseLike(): Buffer {
  const data = Buffer.alloc(48 * MiB)
  randomBytes(MiB).copy(data, 0)
  data.write('a few bytes in a run of zeros', 21 * MiB + 100)
  randomBytes(MiB).copy(data, 30 * MiB + 7)
  return data
}

t.test('writeSparse leaves whole 4 KiB blocks of zeros as holes, wherever the pieces start and end', async (t) => {
  const data = sparseLike()
  const file = join(t.testdir(), 'out')
  const fh = await open(file, 'wx')
  let at = 0
  for (const piece of [1, 4095, 4097, 3 * MiB + 5, 123_457, 20 * MiB, 9 * MiB - 3]) {
    await writeSparse(fh, data.subarray(at, at + piece), at)
    at += piece
  }
  await writeSparse(fh, data.subarray(at), at)
  await fh.truncate(data.length)
  await fh.close()
  t.ok((await readFile(file)).equals(data), 'the content is identical')
  const allocated = (await stat(file)).blocks * 512
  t.ok(allocated <= 2 * MiB + 3 * 4096, `only the data blocks are allocated (${allocated} bytes of ${data.length})`)
})

t.test('a blob with long runs of zeros is fetched over libp2p and lands sparse, with its hash', async (t) => {
  const net = await startNetwork(t, 2)
  const [a, b] = net.envs
  t.match(net.boot, /^\/ip4\/127\.0\.0\.1\//, 'the nodes talk over loopback')
  await new Promise((r) => setTimeout(r, 1500)) // let the routing tables fill

  const data = sparseLike()
  const put = await upload(a, data)
  t.equal(put.hash, createHash('sha256').update(data).digest('hex'))
  const fetched = await createClient({ socket: b.socket }).post<{ path: string; size: number; provider: string }>(`/v1/net/blobs/${put.hash}/fetch`)
  t.ok(fetched.provider, 'it came from the other node')
  t.equal(fetched.size, data.length, 'the whole length, trailing zeros included')
  const st = await stat(fetched.path)
  t.equal(st.size, data.length)
  t.ok(st.blocks * 512 <= 2 * MiB + 3 * 4096, `only the data is allocated: ${st.blocks * 512} bytes of ${st.size}`)
  const content = await readFile(fetched.path)
  t.equal(createHash('sha256').update(content).digest('hex'), put.hash, 'the stored file has the hash it is stored under')
  t.ok(content.equals(data), 'the content is identical')
})
