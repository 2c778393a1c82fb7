import t from 'tap'
import { signRequest } from '../../core/auth/sign.js'
import { createRequestVerifier } from '../../core/auth/verify.js'
import { createClient } from '../../core/client.js'
import { walletSigner } from '../../plugins/kit/lib/signer.js'
import { createWallet } from '../../plugins/kit/lib/wallet.js'
import { makeEnv, startNode } from '../helpers/form.js'

const wallet = createWallet()
const signer = walletSigner(wallet)
const body = Buffer.from('{"replicas":2}')
const NOW = 1_800_000_000_000

function signed(overrides: { now?: number } = {}) {
  return { method: 'POST', path: '/v1/pack/ship?x=1', body, headers: signRequest({ method: 'POST', path: '/v1/pack/ship?x=1', body, signer, now: overrides.now ?? NOW }) as Record<string, string> }
}

t.test('a signed request verifies to the signer\'s address', async (t) => {
  const v = createRequestVerifier({ now: () => NOW })
  t.equal(v.verify(signed()), wallet.address)
})

t.test('tampering with the body, path, method, timestamp or nonce is rejected', async (t) => {
  const cases: [string, (r: ReturnType<typeof signed>) => void][] = [
    ['body', (r) => (r.body = Buffer.from('{"replicas":20}'))],
    ['path', (r) => (r.path = '/v1/pack/ship?x=2')],
    ['method', (r) => (r.method = 'DELETE')],
    ['timestamp', (r) => (r.headers['x-form-timestamp'] = String(NOW + 1))],
    ['nonce', (r) => (r.headers['x-form-nonce'] = 'f'.repeat(32))],
    ['claimed address', (r) => (r.headers['x-form-address'] = '0x' + '1'.repeat(40))],
  ]
  for (const [what, tamper] of cases) {
    const r = signed()
    tamper(r)
    t.throws(() => createRequestVerifier({ now: () => NOW }).verify(r), { code: 'AUTH_BAD_SIGNATURE', httpStatus: 401 }, what)
  }
})

t.test('a request names its audience: another node, or no node, is refused before the signature is checked', async (t) => {
  const v = createRequestVerifier({ now: () => NOW, audiences: () => ['0xnode-a', 'peer-a'] })
  const forA = (audience?: string) => ({ method: 'POST', path: '/p', body, headers: signRequest({ method: 'POST', path: '/p', body, signer, now: NOW, audience }) as Record<string, string> })
  t.equal(v.verify(forA('0xnode-a')), wallet.address, 'its address')
  t.equal(v.verify(forA('peer-a')), wallet.address, 'its peer id')
  t.throws(() => v.verify(forA('0xnode-b')), { code: 'AUTH_WRONG_AUDIENCE', httpStatus: 401, message: /signed for the node "0xnode-b", not for this one \(0xnode-a\)/ })
  t.throws(() => v.verify(forA()), { code: 'AUTH_WRONG_AUDIENCE', message: /names no node/ })
  const moved = forA('0xnode-b')
  moved.headers['x-form-audience'] = '0xnode-a'
  t.throws(() => v.verify(moved), { code: 'AUTH_BAD_SIGNATURE' }, 'the audience is inside what is signed')
})

t.test('a replayed request is rejected while its timestamp is fresh, and by the window afterwards', async (t) => {
  let now = NOW
  const v = createRequestVerifier({ now: () => now, windowMs: 60_000 })
  const r = signed()
  t.equal(v.verify(r), wallet.address)
  t.throws(() => v.verify(r), { code: 'AUTH_REPLAY' })
  now = NOW + 61_000
  t.throws(() => v.verify(r), { code: 'AUTH_EXPIRED' })
})

t.test('timestamps outside the window either way, missing and malformed headers', async (t) => {
  const v = createRequestVerifier({ now: () => NOW, windowMs: 60_000 })
  t.throws(() => v.verify(signed({ now: NOW - 60_001 })), { code: 'AUTH_EXPIRED' })
  t.throws(() => v.verify(signed({ now: NOW + 60_001 })), { code: 'AUTH_EXPIRED' })
  t.throws(() => v.verify({ method: 'POST', path: '/', body, headers: {} }), { code: 'AUTH_MISSING' })
  const r = signed()
  r.headers['x-form-signature'] = 'zz'
  t.throws(() => v.verify(r), { code: 'AUTH_MALFORMED' })
})

t.test('the node verifies signed requests end to end and refuses unsigned or replayed ones', async (t) => {
  const fe = await makeEnv(t)
  const node = await startNode(fe)
  t.teardown(() => node.stop('SIGKILL'))
  const client = createClient({ socket: fe.socket, signer: (req) => signRequest({ ...req, signer }) })
  t.same(await client.post('/v1/auth/whoami', { hello: 1 }), { address: wallet.address })
  await t.rejects(createClient({ socket: fe.socket }).post('/v1/auth/whoami', {}), { code: 'AUTH_MISSING' })
  // replay the exact bytes of one signed request
  const path = '/v1/auth/whoami'
  const payload = Buffer.from('{}')
  const { audience } = await createClient({ socket: fe.socket }).get<{ audience: string }>('/v1/auth/audience')
  const headers = signRequest({ method: 'POST', path, body: payload, signer, audience })
  const replayer = createClient({ socket: fe.socket, signer: () => headers })
  t.same(await replayer.post(path, {}), { address: wallet.address })
  await t.rejects(replayer.post(path, {}), { code: 'AUTH_REPLAY' })
  await node.stop()
})
