import t from 'tap'
import { generateKeyPairSync, sign } from 'node:crypto'
import { VerifyPool } from '../../plugins/state/lib/verify-pool.js'

// The pool is where every operation from a peer has its signature checked: a wrong answer lets a
// forged operation in (or refuses an honest one), and answers out of order would pin one
// operation's result on another. Checks go to the workers packed into one transferred buffer.

const signer = () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  return { key: publicKey.export({ type: 'spki', format: 'der' }).subarray(12).toString('hex'), sign: (m: Buffer) => sign(null, m, privateKey) }
}
const alice = signer()
const bob = signer()
const check = (who: ReturnType<typeof signer>, text: string) => {
  const message = Buffer.from(text)
  return { key: who.key, message, signature: who.sign(message) }
}

t.test('answers each check, in order, across workers and keys', async (t) => {
  const pool = new VerifyPool(2)
  t.teardown(() => pool.close())
  const checks = Array.from({ length: 301 }, (_, i) => check(i % 3 ? alice : bob, `operation ${i} ${'x'.repeat(i)}`))
  // every 7th is tampered with: another message, another key, or a flipped signature byte
  const expected = checks.map((_, i) => i % 7 !== 0)
  checks.forEach((c, i) => {
    if (i % 7 !== 0) return
    if (i % 3 === 0) c.message = Buffer.from(`operation ${i} changed`)
    else if (i % 3 === 1) c.key = c.key === alice.key ? bob.key : alice.key
    else c.signature = Buffer.from(c.signature.map((b, j) => (j === 5 ? b ^ 1 : b)))
  })
  t.same(await pool.verify(checks), expected)
  // a second call reuses the workers' key cache and still answers right
  t.same(await pool.verify(checks.slice(0, 10)), expected.slice(0, 10))
  t.same(await pool.verify([]), [])
})

t.test('a key or signature of the wrong size is refused, not padded into a match', async (t) => {
  const pool = new VerifyPool(1)
  t.teardown(() => pool.close())
  const good = check(alice, 'hello')
  const results = await pool.verify([
    good,
    { ...good, key: good.key.slice(0, 62) },
    { ...good, key: good.key + '00' },
    { ...good, key: 'zz' + good.key.slice(2) },
    { ...good, signature: good.signature.subarray(0, 63) },
    { ...good, signature: Buffer.concat([good.signature, Buffer.from([0])]) },
    check(alice, ''),
    good,
  ])
  t.same(results, [true, false, false, false, false, false, true, true])
})
