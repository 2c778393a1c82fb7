import t from 'tap'
import type { Test } from 'tap'
import { StateStore } from '../../plugins/state/lib/store.js'
import { authorFromKeys, createDelegation, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { createOp, type Op } from '../../plugins/state/lib/op.js'
import { allCollections } from '../helpers/collections.js'

const honest = authorFromKeys(generateAuthorKeys())
const mallory = authorFromKeys(generateAuthorKeys())

async function fresh(t: Test) {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), maxOpBytes: 4096, now: () => 1_000_000 })
  t.teardown(() => store.close())
  await store.insert([createOp(honest, 'accounts', honest.address, { name: 'honest' }, { ms: 999_000, n: 0 })], 'setup')
  return store
}

async function expectRejected(t: Test, input: unknown, code: string, message: RegExp) {
  const store = await fresh(t)
  const before = JSON.stringify(await store.list('accounts', { includeDeleted: true }))
  const opsBefore = store.stats().ops
  const r = await store.insert([input], 'mallory-peer')
  t.equal(r.accepted, 0, 'not accepted')
  t.match(r.rejected, [{ index: 0, code, message }])
  t.equal(JSON.stringify(await store.list('accounts', { includeDeleted: true })), before, 'records unchanged')
  t.equal(store.stats().ops, opsBefore, 'nothing added to the log')
  t.same(store.stats().rejected['mallory-peer'], { [code]: 1 }, 'counted against its source')
}

const good = (): Op => createOp(honest, 'accounts', honest.address, { name: 'changed' }, { ms: 1_000_000, n: 0 })

t.test('a forged signature is rejected', async (t) => {
  const op = good()
  const sig = Buffer.from(op.sig, 'hex')
  sig[0] ^= 1
  await expectRejected(t, { ...op, sig: sig.toString('hex') }, 'OP_BAD_SIGNATURE', /signature does not match/)
})

t.test('a value changed after signing is rejected', async (t) => {
  await expectRejected(t, { ...good(), val: { name: 'tampered' } }, 'OP_BAD_SIGNATURE', /signature/)
})

t.test('writing another account\'s key is rejected', async (t) => {
  await expectRejected(t, createOp(mallory, 'accounts', honest.address, { name: 'pwned' }, { ms: 1_000_000, n: 0 }), 'OP_UNAUTHORIZED', /may not write accounts\//)
})

t.test('claiming another address in the delegation is rejected', async (t) => {
  const op = createOp(mallory, 'accounts', honest.address, { name: 'pwned' }, { ms: 1_000_000, n: 0 })
  await expectRejected(t, { ...op, by: { ...op.by, address: honest.address } }, 'OP_BAD_DELEGATION', /not signed by/)
})

t.test('a delegation from another wallet for the same key is rejected', async (t) => {
  const keys = generateAuthorKeys()
  const stolen = createDelegation(generateAuthorKeys().walletPrivateKey, keys.delegation.key)
  const op = createOp(authorFromKeys({ ...keys, delegation: { ...stolen, address: keys.delegation.address } }), 'accounts', keys.delegation.address, { name: 'x' }, { ms: 1_000_000, n: 0 })
  await expectRejected(t, op, 'OP_BAD_DELEGATION', /not signed by/)
})

t.test('a timestamp beyond the hold bound is rejected', async (t) => {
  await expectRejected(t, createOp(honest, 'accounts', honest.address, { name: 'future' }, { ms: 1_000_000 + 15 * 60_000 + 1, n: 0 }), 'OP_FUTURE', /ahead of this node's clock/)
})

t.test('timestamps outside the bounds are malformed, never a thrown error', async (t) => {
  for (const ts of [{ ms: 8.64e15 + 1, n: 0 }, { ms: 1, n: 2 ** 31 }, { ms: 1, n: 2 ** 53 - 1 }, { ms: 1.5, n: 0 }]) {
    await t.test(JSON.stringify(ts), (t) => expectRejected(t, createOp(honest, 'accounts', honest.address, { name: 'x' }, ts), 'OP_MALFORMED', /field t must be/))
  }
})

t.test('an operation a little ahead is held, not rejected nor counted, and applied when due', async (t) => {
  let now = 1_000_000
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), now: () => now })
  t.teardown(() => store.close())
  const ahead = createOp(honest, 'accounts', honest.address, { name: 'early' }, { ms: now + 5 * 60_000, n: 0 })
  const r = await store.insert([ahead], 'fast-peer')
  t.match(r, { accepted: 0, held: 1, rejected: [] })
  t.same(store.stats().rejected, {}, 'nothing counted against the peer')
  t.equal(await store.get('accounts', honest.address), undefined, 'not applied early')
  t.equal(await store.releaseHeld(), 0, 'not due yet')
  now += 4 * 60_000
  t.equal(await store.releaseHeld(), 1, 'applied once within the allowed skew')
  t.match(await store.get('accounts', honest.address), { value: { name: 'early' } })
  // the node's own writes go on: the clock never moved past its wall time + skew
  t.ok(store.clock.now().ms <= now + 60_000)
})

t.test('a poisoned timestamp cannot stop this node writing', async (t) => {
  const now = 1_000_000
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), now: () => now })
  t.teardown(() => store.close())
  const poison = createOp(mallory, 'accounts', mallory.address, { name: 'p' }, { ms: now + 40_000, n: 2 ** 31 - 1 })
  t.equal((await store.insert([poison], 'mallory')).accepted, 1, 'the largest counter is a valid timestamp')
  for (let i = 0; i < 3; i++) {
    const rec = await store.put(honest, 'accounts', honest.address, { name: `w${i}` })
    t.ok(rec.t.ms <= now + 60_001 && rec.t.n <= 2 ** 31 - 1, `own write ${i} at ${JSON.stringify(rec.t)}`)
  }
})

t.test('an oversize value is rejected', async (t) => {
  await expectRejected(t, createOp(honest, 'accounts', honest.address, { blob: 'x'.repeat(5000) }, { ms: 1_000_000, n: 0 }), 'OP_TOO_LARGE', /the limit is 4096/)
})

t.test('malformed encodings are rejected', async (t) => {
  const op = good()
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 'hello', /JSON object/],
    ['unknown field', { ...op, extra: 1 }, /unknown field "extra"/],
    ['bad version', { ...op, v: 2 }, /v must be 1/],
    ['bad key', { ...op, k: '../etc' }, /key segment "\.\." is not allowed/],
    ['bad key characters', { ...op, k: 'a b' }, /key segment "a b" must be/],
    ['both val and del', { ...op, del: true }, /exactly one of val and del/],
    ['bad timestamp', { ...op, t: { ms: -1, n: 0 } }, /field t/],
    ['bad delegation', { ...op, by: { address: 'x' } }, /delegation/],
    ['short signature', { ...op, sig: 'abcd' }, /64 bytes/],
    ['unknown collection', createOp(honest, 'secrets', honest.address, { x: 1 }, { ms: 1, n: 0 }), /unknown collection "secrets"/],
  ]
  for (const [name, input, message] of cases) await t.test(name, (t) => expectRejected(t, input, name === 'unknown collection' ? 'OP_UNAUTHORIZED' : 'OP_MALFORMED', message))
})

t.test('in a mixed batch only the valid operations land', async (t) => {
  const store = await fresh(t)
  const bad = { ...good(), sig: '00'.repeat(64) }
  const ok = createOp(honest, 'dns', `${honest.address}/www`, { ip: '10.0.0.2' }, { ms: 1_000_000, n: 1 })
  const r = await store.insert([bad, ok], 'p')
  t.match(r, { accepted: 1, rejected: [{ index: 0, code: 'OP_BAD_SIGNATURE' }] })
  t.match(await store.get('dns', `${honest.address}/www`), { value: { ip: '10.0.0.2' } })
  t.match(await store.get('accounts', honest.address), { value: { name: 'honest' } })
})

t.test('with worker-thread verification, exactly the forged ops of a large batch are rejected', async (t) => {
  const store = await StateStore.open({ collections: allCollections, dir: t.testdir(), verifyWorkers: 2, now: () => 1_000_000 })
  t.teardown(() => store.close())
  const ops = Array.from({ length: 40 }, (_, i) => createOp(honest, 'dns', `${honest.address}/n${i}`, { i }, { ms: 1_000_000, n: i }))
  const forged = new Set([3, 17, 39])
  const batch = ops.map((op, i) => (forged.has(i) ? { ...op, val: { i: -1 } } : op))
  const r = await store.insert(batch, 'bulk-peer')
  t.equal(r.accepted, 37)
  t.same(r.rejected.map((x) => [x.index, x.code]), [...forged].map((i) => [i, 'OP_BAD_SIGNATURE']))
  t.same(store.stats().rejected['bulk-peer'], { OP_BAD_SIGNATURE: 3 })
  t.equal((await store.list('dns')).records.length, 37)
})

t.test('a node record may name only a peer id whose key signed the node\'s address', async (t) => {
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const { peerBindingMessage } = await import('../../plugins/state/lib/peer-binding.js')
  const mine = await generateKeyPair('Ed25519')
  const theirs = await generateKeyPair('Ed25519')
  const proof = async (key: typeof mine) => Buffer.from(await key.sign(peerBindingMessage(honest.address))).toString('hex')
  const record = (peerId: string, peerIdProof?: string) => createOp(honest, 'nodes', honest.address, { peerId, peerIdProof, heartbeat: 1 }, { ms: 1_000_000, n: 9 })
  const store = await fresh(t)
  const good = await store.insert([record(peerIdFromPrivateKey(mine).toString(), await proof(mine))], 'p')
  t.equal(good.accepted, 1, 'its own peer id with a proof')
  for (const [what, op] of [
    ['no proof', record(peerIdFromPrivateKey(theirs).toString())],
    ['a proof by another key', record(peerIdFromPrivateKey(theirs).toString(), await proof(mine))],
    ['not a peer id', record('12D3KooWnotreally', await proof(mine))],
  ] as const) {
    const r = await store.insert([op], 'p')
    t.match(r.rejected, [{ code: 'OP_UNAUTHORIZED' }], what)
  }
})
