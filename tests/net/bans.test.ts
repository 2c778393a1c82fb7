import t from 'tap'
import { multiaddr } from '@multiformats/multiaddr'
import { BanList, ipOf } from '../../plugins/net/lib/p2p/bans.js'

// The p2p service's bans, with a clock the test moves: a ban covers the peer id and the addresses it
// came from, libp2p's gater refuses both, and the ban lapses by itself.

const peer = (id: string) => ({ toString: () => id }) as never

t.test('a ban refuses the peer and its addresses until it lapses', async (t) => {
  let now = 1_000
  const bans = new BanList(() => now)
  let refused = 0
  const gater = bans.gater(() => refused++)
  const from = multiaddr('/ip4/192.0.2.7/tcp/4001')
  const elsewhere = multiaddr('/ip4/192.0.2.8/tcp/4001')
  t.equal(bans.isBanned('peer-a'), false)
  bans.ban('peer-a', [ipOf(from)!], 60_000)
  t.equal(bans.isBanned('peer-a'), true, 'the peer id')
  t.equal(bans.isBanned('peer-b'), false, 'not another peer')
  t.equal(bans.ipBanned(from), true, 'its address, under any key')
  t.equal(bans.ipBanned(elsewhere), false, 'not another address')
  t.equal(gater.denyDialMultiaddr!(from), true, 'no dial to its address')
  t.equal(gater.denyDialPeer!(peer('peer-a')), true, 'no dial to it')
  t.equal(gater.denyInboundConnection!({ remoteAddr: from } as never), true, 'a connection from its address is refused')
  t.equal(gater.denyInboundEncryptedConnection!(peer('peer-a'), {} as never), true, 'and one from its key')
  t.equal(gater.denyInboundConnection!({ remoteAddr: elsewhere } as never), false, 'others come in')
  t.equal(refused, 2, 'the refusals are counted')
  t.same(bans.live(), { peers: 1, addresses: 1 })
  now += 60_000
  t.equal(bans.isBanned('peer-a'), false, 'lapsed')
  t.equal(bans.ipBanned(from), false)
  t.same(bans.live(), { peers: 0, addresses: 0 })
})

t.test('an address without an IP is never banned', async (t) => {
  const bans = new BanList()
  bans.ban('peer-a', [], 60_000)
  t.equal(ipOf(multiaddr('/dns4/example.com/tcp/1')), undefined)
  t.equal(bans.ipBanned(multiaddr('/dns4/example.com/tcp/1')), false)
  t.equal(bans.ipBanned(undefined), false)
})
