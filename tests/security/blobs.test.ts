// Blobs (image disks: code, ENV values, password hashes) are public by hash in state. A stranger
// with a libp2p peer of its own, and a node that joined but was never admitted, ask a member for
// one: both are refused, while members keep fetching; admission opens the door, revocation shuts it.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import got from 'got'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { BLOB_PROTOCOL, BlobStore } from '../../plugins/net/lib/p2p/blobs.js'
import { createHost } from '../../plugins/net/lib/p2p/host.js'
import { form, joinEnv, makeEnv, startNode, stateAddress, until, type FormEnv } from '../helpers/form.js'
import { api, startNetwork } from '../helpers/network.js'

const FAST = '[state]\nheartbeat_interval_ms = 1000\nanti_entropy_interval_ms = 3000\n'

const upload = async (fe: FormEnv, data: Buffer) =>
  JSON.parse((await got.post(`http://unix:${fe.socket}:/v1/net/blobs`, { enableUnixSockets: true, body: data })).body) as { hash: string; size: number }
const fetchBlob = (fe: FormEnv, hash: string) => api(fe).post<{ path: string; size: number; provider?: string }>(`/v1/net/blobs/${hash}/fetch`)
const refusals = async (fe: FormEnv) => {
  const node = await api(fe).get<{ services: { name: string; info: { limitsHit?: Record<string, number> } }[] }>('/v1/node')
  return node.services.find((s) => s.name === 'p2p')?.info.limitsHit?.blob_refused ?? 0
}

t.test('a blob is served to admitted members only: strangers and waiting nodes are refused, members keep fetching', async (t) => {
  const net = await startNetwork(t, 2, FAST)
  const [a, b] = net.envs
  // a disk image in miniature: what a stranger must not read
  const secret = Buffer.concat([Buffer.from('root:$6$rounds=5000$saltsalt$hash:19000:0:99999:7:::\nAPI_TOKEN=s3cr3t\n'), randomBytes(200_000)])
  const blob = await upload(a, secret)

  // 1. a bare libp2p peer with a fresh key dials the member and asks for the blob by its hash
  const dir = mkdtempSync(join(tmpdir(), 'form-blob-stranger-'))
  const stranger = (await createHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], announce: [], datastorePath: join(dir, 'ds') })).node
  t.teardown(() => stranger.stop())
  const mine = new BlobStore(join(dir, 'blobs'))
  const { multiaddr } = await import('@multiformats/multiaddr')
  const stream = await stranger.dialProtocol(multiaddr(net.boot), BLOB_PROTOCOL)
  await t.rejects(mine.fetchFrom(stream, blob.hash, 10 * 2 ** 20), { code: 'BLOB_REFUSED', message: /only to admitted members/ }, 'the stranger is refused')
  t.equal(await mine.size(blob.hash), undefined, 'and holds nothing')

  // 2. a node that joined the network (same admins, bootstrapped) but was never admitted
  const c = await makeEnv(t, { ...(await joinEnv(a)), FORM_BOOTSTRAP: net.boot })
  const nodeC = await startNode(c)
  t.teardown(() => nodeC.stop('SIGKILL'))
  await t.rejects(fetchBlob(c, blob.hash), { code: 'BLOB_UNAVAILABLE', message: /BLOB_REFUSED|refused/ }, 'the waiting node is refused')
  await t.rejects(readFile(join(c.dir, 'data', 'blobs', 'sha256', blob.hash)), { code: 'ENOENT' }, 'and holds nothing')
  t.ok((await refusals(a)) >= 2, 'the member counts the refusals (form node status --json: limitsHit.blob_refused)')

  // 3. the network keeps working: the other member fetches it, verified
  const got1 = await fetchBlob(b, blob.hash)
  t.ok((await readFile(got1.path)).equals(secret), 'a member gets the blob')

  // 4. admission opens the door...
  const address = await stateAddress(c)
  t.equal((await form(a, ['node', 'admit', address])).code, 0)
  const got2 = await until('the admitted node to get the blob', async () => fetchBlob(c, blob.hash).catch(() => undefined), 60_000)
  t.ok((await readFile(got2.path)).equals(secret), 'once admitted, it gets the blob')

  // 5. ...and revocation shuts it again, for blobs it does not hold yet
  const later = await upload(a, randomBytes(100_000))
  const revoked = await form(a, ['node', 'revoke', address])
  t.equal(revoked.code, 0, revoked.stderr)
  await until('the revocation to reach the member', async () => ((await api(a).get<{ members: { address: string }[] }>('/v1/state/members').catch(() => undefined))?.members.some((m) => m.address === address) === false ? true : undefined))
  await t.rejects(fetchBlob(c, later.hash), { code: 'BLOB_UNAVAILABLE', message: /BLOB_REFUSED|refused/ }, 'the revoked node is refused')
  const got3 = await fetchBlob(b, later.hash)
  t.equal(got3.size, 100_000, 'members still fetch')
})
