import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { planPeers } from '../../plugins/net/lib/formnet/reconcile.js'
import { decodeKey, fromHex, generateWireGuardKeys, publicKeyOf, toHex } from '../../plugins/net/lib/wireguard/keys.js'
import { parseGet, serializeSet, uapiGet, uapiSet } from '../../plugins/net/lib/wireguard/uapi.js'
import { NetnsLab, netnsUnavailable } from '../helpers/netns.js'

t.test('keys: generation, public key derivation, base64 <-> hex', async (t) => {
  const k = generateWireGuardKeys()
  t.equal(publicKeyOf(k.privateKey), k.publicKey)
  t.equal(fromHex(toHex(k.publicKey)), k.publicKey)
  t.equal(decodeKey(k.publicKey).length, 32)
  t.throws(() => decodeKey('c2hvcnQ='), { code: 'WG_BAD_KEY' })
})

t.test('UAPI text: set serialization and get parsing', async (t) => {
  const a = generateWireGuardKeys()
  const b = generateWireGuardKeys()
  t.equal(
    serializeSet({ privateKey: a.privateKey, listenPort: 51820, peers: [{ publicKey: b.publicKey, endpoint: '10.0.0.2:51820', persistentKeepalive: 25, allowedIps: ['10.1.0.0/24'] }, { publicKey: a.publicKey, remove: true }] }),
    `set=1\nprivate_key=${toHex(a.privateKey)}\nlisten_port=51820\npublic_key=${toHex(b.publicKey)}\nendpoint=10.0.0.2:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.1.0.0/24\npublic_key=${toHex(a.publicKey)}\nremove=true\n\n`,
  )
  const state = parseGet(`private_key=${toHex(a.privateKey)}\nlisten_port=51820\npublic_key=${toHex(b.publicKey)}\nendpoint=10.0.0.2:51820\nlast_handshake_time_sec=1700000000\nrx_bytes=10\ntx_bytes=20\npersistent_keepalive_interval=25\nallowed_ip=10.1.0.0/24\nallowed_ip=10.9.9.9/32\nerrno=0\n\n`)
  t.same(state, { privateKey: a.privateKey, listenPort: 51820, peers: [{ publicKey: b.publicKey, endpoint: '10.0.0.2:51820', allowedIps: ['10.1.0.0/24', '10.9.9.9/32'], persistentKeepalive: 25, lastHandshake: 1700000000, rxBytes: 10, txBytes: 20 }] })
})

t.test('planPeers: adds, updates and removes only what differs', async (t) => {
  const [p1, p2, p3] = [generateWireGuardKeys(), generateWireGuardKeys(), generateWireGuardKeys()].map((k) => k.publicKey)
  const current = { peers: [
    { publicKey: p1, endpoint: '1.1.1.1:1', allowedIps: ['10.1.0.0/24'], lastHandshake: 0, rxBytes: 0, txBytes: 0 },
    { publicKey: p2, endpoint: '2.2.2.2:2', allowedIps: ['10.2.0.0/24'], lastHandshake: 0, rxBytes: 0, txBytes: 0 },
  ] }
  t.same(planPeers(current, [{ publicKey: p1, allowedIps: ['10.1.0.0/24'] }, { publicKey: p3, endpoint: '3.3.3.3:3', allowedIps: ['10.3.0.1/32'], persistentKeepalive: 25 }]), [
    { publicKey: p2, remove: true },
    { publicKey: p3, endpoint: '3.3.3.3:3', persistentKeepalive: 25, allowedIps: ['10.3.0.1/32'] },
  ])
  t.same(planPeers(current, [{ publicKey: p1, endpoint: '1.1.1.1:1', allowedIps: ['10.1.0.0/24'] }, { publicKey: p2, endpoint: '2.2.2.2:2', allowedIps: ['10.2.0.0/24'] }]), [], 'nothing to do')
})

const missing = netnsUnavailable(['wireguard-go'])
t.test('a wireguard-go interface in a network namespace is configured and read through the UAPI', { skip: missing ? `cannot run here: ${missing}` : false }, async (t) => {
  const lab = new NetnsLab(t)
  const ns = lab.namespace('ftw')
  const ifname = lab.name('fwg')
  const socket = `/var/run/wireguard/${ifname}.sock`
  lab.ownSocket(socket)
  // -f: foreground, so the test owns the process (never WG_PROCESS_FOREGROUND=0)
  const wg = lab.spawnIn(ns, ['wireguard-go', '-f', ifname])
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50))
  t.ok(existsSync(socket), 'the UAPI socket appeared')

  const me = generateWireGuardKeys()
  const peer = generateWireGuardKeys()
  await uapiSet(socket, { privateKey: me.privateKey, listenPort: 51999, peers: [{ publicKey: peer.publicKey, endpoint: '10.250.0.2:51820', persistentKeepalive: 25, allowedIps: ['10.42.0.0/24'] }] })
  const state = await uapiGet(socket)
  t.equal(state.listenPort, 51999)
  t.equal(state.privateKey, me.privateKey)
  t.match(state.peers, [{ publicKey: peer.publicKey, endpoint: '10.250.0.2:51820', allowedIps: ['10.42.0.0/24'], persistentKeepalive: 25 }])
  // the kernel sees the interface in the namespace only
  t.match(spawnSync('ip', ['-n', ns, 'link', 'show', ifname], { encoding: 'utf8' }).stdout, ifname)
  t.not(spawnSync('ip', ['link', 'show', ifname]).status, 0, 'not in the host namespace')

  // reconcile to an empty peer list
  await uapiSet(socket, { peers: planPeers(await uapiGet(socket), []) })
  t.same((await uapiGet(socket)).peers, [])
  await t.rejects(uapiSet(socket, { peers: [{ publicKey: peer.publicKey, endpoint: 'not-an-endpoint' }] }), { code: 'WG_UAPI_ERROR' })

  wg.kill('SIGTERM')
  await new Promise((r) => wg.once('exit', r))
  for (let i = 0; i < 40 && existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50))
  t.notOk(existsSync(socket), 'wireguard-go removed its socket when it stopped')
})
