import t from 'tap'
import { addressFromPrivateKey, checksumAddress, createWallet, recoverAddress, signDigest, walletFromMnemonic, walletFromPrivateKey } from '../../plugins/kit/lib/wallet.js'

t.test('the standard path m/44\'/60\'/0\'/0/0 of a known mnemonic', async (t) => {
  const w = walletFromMnemonic('test test test test test test test test test test test junk')
  t.equal(checksumAddress(w.address), '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')
  t.equal(Buffer.from(w.privateKey).toString('hex'), 'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80')
})

t.test('private key 1 has the well-known address', async (t) => {
  t.equal(walletFromPrivateKey('0x' + '0'.repeat(63) + '1').address, '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf')
})

t.test('EIP-55 checksums match the EIP\'s examples', async (t) => {
  for (const a of ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed', '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359', '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB', '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb']) {
    t.equal(checksumAddress(a.toLowerCase()), a)
  }
})

t.test('new wallets come from a 12-word mnemonic that restores them', async (t) => {
  const w = createWallet()
  t.equal(w.mnemonic!.split(' ').length, 12)
  t.equal(walletFromMnemonic(w.mnemonic!).address, w.address)
  t.equal(addressFromPrivateKey(w.privateKey), w.address)
})

t.test('bad input is refused without echoing it', async (t) => {
  const err = t.throws(() => walletFromMnemonic('test test test test test test test test test test test test')) as unknown as Error
  t.match(err, { code: 'WALLET_BAD_MNEMONIC' })
  t.notMatch(err.message, /test test/)
  t.throws(() => walletFromPrivateKey('xyz'), { code: 'WALLET_BAD_PRIVATE_KEY' })
  t.throws(() => walletFromPrivateKey('0'.repeat(64)), { code: 'WALLET_BAD_PRIVATE_KEY' }, 'zero is not a valid key')
})

t.test('signatures recover to the signer', async (t) => {
  const w = createWallet()
  const digest = new Uint8Array(32).fill(7)
  t.equal(recoverAddress(digest, signDigest(w.privateKey, digest)), w.address)
})
