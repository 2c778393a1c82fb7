import t from 'tap'
import { stat, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Wallet as EthersWallet, encryptKeystoreJson } from 'ethers'
import { decryptKeystore, encryptKeystore, writeSecretFile, type KeystoreV3 } from '../../plugins/kit/lib/keystore.js'
import { createWallet, walletFromPrivateKey } from '../../plugins/kit/lib/wallet.js'

const FAST = { n: 1024, r: 8, p: 1 }

// The test vectors of the Web3 Secret Storage definition (password "testpassword").
const VECTOR_KEY = '7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d'
const PBKDF2: KeystoreV3 = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '6087dab2f9fdbbfaddc31a909735c1e6' },
    ciphertext: '5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46',
    kdf: 'pbkdf2',
    kdfparams: { c: 262144, dklen: 32, prf: 'hmac-sha256', salt: 'ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd' },
    mac: '517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2',
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3,
} as unknown as KeystoreV3
const SCRYPT: KeystoreV3 = {
  crypto: {
    cipher: 'aes-128-ctr',
    cipherparams: { iv: '83dbcc02d8ccb40e466191a123791e0e' },
    ciphertext: 'd172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c',
    kdf: 'scrypt',
    kdfparams: { dklen: 32, n: 262144, r: 1, p: 8, salt: 'ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19' },
    mac: '2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097',
  },
  id: '3198bc9c-6672-5ab3-d995-4942343ae5b6',
  version: 3,
} as unknown as KeystoreV3

t.test('the Web3 Secret Storage test vectors decrypt (pbkdf2 and scrypt)', async (t) => {
  for (const ks of [PBKDF2, SCRYPT]) {
    const w = await decryptKeystore(ks, 'testpassword')
    t.equal(Buffer.from(w.privateKey).toString('hex'), VECTOR_KEY, ks.crypto.kdf)
  }
  await t.rejects(decryptKeystore(SCRYPT, 'wrong'), { code: 'KEYSTORE_WRONG_PASSWORD' })
})

t.test('round trip with the default scrypt parameters, mnemonic included', async (t) => {
  const w = createWallet()
  const ks = await encryptKeystore(w, 'correct horse')
  t.match(ks.crypto.kdfparams, { n: 262144, r: 8, p: 1, dklen: 32 })
  t.notMatch(JSON.stringify(ks), new RegExp(Buffer.from(w.privateKey).toString('hex')))
  t.notMatch(JSON.stringify(ks), new RegExp(w.mnemonic!.split(' ')[0] + ' '))
  const back = await decryptKeystore(ks, 'correct horse')
  t.equal(back.address, w.address)
  t.equal(back.mnemonic, w.mnemonic)
})

t.test('ethers opens our keystore, and we open ethers\'', async (t) => {
  const ours = walletFromPrivateKey(VECTOR_KEY)
  const ks = await encryptKeystore(ours, 'pw', FAST)
  const viaEthers = await EthersWallet.fromEncryptedJson(JSON.stringify(ks), 'pw')
  t.equal(viaEthers.address.toLowerCase(), ours.address)
  const theirs = EthersWallet.createRandom()
  const json = await encryptKeystoreJson({ address: theirs.address, privateKey: theirs.privateKey }, 'pw2', { scrypt: { N: 1024 } })
  const opened = await decryptKeystore(JSON.parse(json), 'pw2')
  t.equal(opened.address, theirs.address.toLowerCase())
  t.equal('0x' + Buffer.from(opened.privateKey).toString('hex'), theirs.privateKey)
})

t.test('a keystore whose address does not match its key is refused', async (t) => {
  const ks = await encryptKeystore(createWallet(), 'pw', FAST)
  await t.rejects(decryptKeystore({ ...ks, address: '11'.repeat(20) }, 'pw'), { code: 'KEYSTORE_INVALID', message: /says address/ })
})

t.test('secret files are 0600, atomic, and never silently replaced', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'sub', 'keystore.json')
  await writeSecretFile(file, 'one')
  t.equal((await stat(file)).mode & 0o777, 0o600)
  await t.rejects(writeSecretFile(file, 'two'), { code: 'FILE_EXISTS', hint: /--force/ })
  t.equal(await readFile(file, 'utf8'), 'one')
  await writeSecretFile(file, 'three', true)
  t.equal(await readFile(file, 'utf8'), 'three')
  await writeFile(join(dir, 'x'), '')
})
