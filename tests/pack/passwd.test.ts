import t from 'tap'
import { encrypt, verify } from 'unixcrypt'
import { hashPassword, SHA512_CRYPT } from '../../plugins/pack/lib/formfile/passwd.js'

t.test('the SHA-512 crypt library reproduces the published test vectors (Drepper, "Unix crypt using SHA-256 and SHA-512")', async (t) => {
  t.equal(encrypt('Hello world!', '$6$saltstring'), '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1')
  t.equal(
    encrypt('Hello world!', '$6$rounds=10000$saltstringsaltstring'),
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
  )
})

t.test('Formfile passwords become verifiable, deterministic $6$ hashes; hashes are kept as given', async (t) => {
  const h = hashPassword('ada', 'correct horse')
  t.match(h, SHA512_CRYPT)
  t.ok(verify('correct horse', h), 'the hash verifies the password')
  t.notOk(verify('wrong', h))
  t.equal(hashPassword('ada', 'correct horse'), h, 'the same Formfile gives the same hash (cacheable builds)')
  t.not(hashPassword('bob', 'correct horse'), h, 'another user gets another salt')
  t.equal(hashPassword('ada', h), h)
})
