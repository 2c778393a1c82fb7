import t from 'tap'
import { createOp, signerProblem } from '../../plugins/state/lib/op.js'
import { authorFromKeys, generateAuthorKeys } from '../../plugins/state/lib/identity.js'
import { checkPeerBinding } from '../../plugins/state/lib/peer-binding.js'

// The signature shapes are shared (core/patterns.ts): an op's Ed25519 signature and a peer-id proof
// are 64 bytes of hex, a delegation's wallet signature 65. A signature a byte short or long is refused
// before any curve is touched.

const author = authorFromKeys(generateAuthorKeys())
const op = createOp(author, 'nodes', 'k', { x: 1 }, { ms: Date.now(), n: 0 }) as unknown as Record<string, unknown> & { sig: string; by: { sig: string } }

t.test('an op signed for real has the shapes', async (t) => {
  t.equal(op.sig.length, 128)
  t.equal(op.by.sig.length, 130)
  t.equal(signerProblem(op), undefined)
})

t.test("an op's Ed25519 signature must be 64 bytes of lower-case hex", async (t) => {
  for (const sig of [op.sig.slice(2), op.sig + 'ab', op.sig.toUpperCase().replace(/^../, 'AB')]) t.equal(signerProblem({ ...op, sig }), 'field sig must be 64 bytes of hex', `${sig.length} characters`)
})

t.test("a delegation's wallet signature must be 65 bytes of hex", async (t) => {
  for (const sig of [op.by.sig.slice(2), op.by.sig + 'ab', op.by.sig.slice(0, 128)]) t.equal(signerProblem({ ...op, by: { ...op.by, sig } }), 'field by must be a delegation {address, key, issued, sig}', `${sig.length} characters`)
})

t.test('a peer-id proof must be 64 bytes of hex', async (t) => {
  for (const proof of ['ab'.repeat(63), 'ab'.repeat(65), 'AB'.repeat(64)]) t.equal(checkPeerBinding('0x' + '1'.repeat(40), '12D3KooW', proof), 'a node record with a peerId needs peerIdProof (64 bytes of hex)', `${proof.length} characters`)
  t.not(checkPeerBinding('0x' + '1'.repeat(40), '12D3KooW', 'ab'.repeat(64)), 'a node record with a peerId needs peerIdProof (64 bytes of hex)', 'the right shape goes on to the real check')
})
