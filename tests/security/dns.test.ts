import t from 'tap'
import * as packet from '@dnsquery/dns-packet'
import { connect } from 'node:net'
import { DnsServer, type DnsLimits } from '../../plugins/net/lib/dns/server.js'
import { parseOwnerRecord, Zone } from '../../plugins/net/lib/dns/zone.js'
import { addressesIn, query, queryPacket, queryTcp, rcodeOf, startUpstream } from '../helpers/dns.js'

/**
 * The node's DNS server faces every instance and formnet peer: what a hostile or careless client
 * can make it do is bounded. Runs on loopback (the real server and a real upstream, UDP and TCP).
 */

const OWNER = '0x' + '1'.repeat(40)

async function lab(t: { teardown(fn: () => unknown): void }, o: { allow?: string[]; limits?: Partial<DnsLimits>; zone?: Zone; upstream?: string } = {}) {
  const up = await startUpstream('127.0.0.1', 0, { 'a.example.test': '203.0.113.1', 'b.example.test': '203.0.113.2', 'c.example.test': '203.0.113.3' }, { 'big.example.test': Array.from({ length: 6 }, (_, i) => `${i}`.repeat(200)) })
  t.teardown(() => up.close())
  const server = new DnsServer({ listen: [{ host: '127.0.0.1', port: 0 }], allow: o.allow ?? ['127.0.0.0/8'], upstreams: [o.upstream ?? `127.0.0.1:${up.port}`], zone: () => o.zone ?? new Zone(), limits: o.limits })
  await server.start()
  t.teardown(() => server.stop())
  const port = server.addresses()[0].port
  return {
    up,
    server,
    port,
    ask: (name: string, type: packet.RecordType = 'A', raw?: Uint8Array) => query('127.0.0.1', port, name, type, { raw, timeoutMs: 500 }),
    askTcp: async (name: string, type: packet.RecordType = 'A') => (await queryTcp('127.0.0.1', port, [queryPacket(name, type)])).responses[0],
  }
}

/** The instance records of `count` running replicas of `build` (198.18.3.2 on). */
const replicaRecords = (build: string, count: number) =>
  Array.from({ length: count }, (_, i) => [
    { key: `${OWNER}/${build}-${i + 1}/desired`, value: { state: 'running' } },
    { key: `${OWNER}/${build}-${i + 1}/observed/0xnode`, value: { state: 'running', ip: `198.18.3.${i + 2}`, updatedAt: 1 } },
  ]).flat()

t.test('a source outside the allowed ranges gets nothing back, and nothing is forwarded for it', async (t) => {
  const { up, server, ask } = await lab(t, { allow: ['198.18.0.0/15'] })
  t.equal(await ask('a.example.test'), undefined, 'no answer: no reflection, no open resolver')
  t.equal(up.asked.length, 0)
  t.equal(server.counters.droppedSource, 1)
})

t.test('oversized and malformed requests are dropped; the server keeps answering', async (t) => {
  const { server, ask } = await lab(t)
  const big = Buffer.alloc(600, 1)
  packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.example.test' }] }).forEach((b, i) => (big[i] = b))
  t.equal(await ask('', 'A', big), undefined, 'a request over 512 bytes')
  t.equal(await ask('', 'A', Buffer.from('not a dns packet at all')), undefined, 'garbage')
  t.equal(await ask('', 'A', packet.encode({ type: 'response', id: 2, questions: [{ type: 'A', name: 'x.test' }] })), undefined, 'a response sent as a query')
  t.same({ size: server.counters.droppedSize, malformed: server.counters.droppedMalformed }, { size: 1, malformed: 2 })
  const two = await ask('', 'A', packet.encode({ type: 'query', id: 3, questions: [{ type: 'A', name: 'a.example.test' }, { type: 'A', name: 'b.example.test' }] }))
  t.equal(two && rcodeOf(two), 1, 'two questions: FORMERR')
  t.same(addressesIn(await ask('a.example.test')), ['203.0.113.1'], 'a good query after all that is answered')
})

t.test('one source is held to its rate', async (t) => {
  const { server, ask } = await lab(t, { limits: { ratePerS: 1, rateBurst: 5 } })
  let answered = 0
  for (let i = 0; i < 12; i++) if (await ask('nothing.fog')) answered++
  t.ok(answered >= 5 && answered < 12, `${answered} of 12 answered with a burst of 5`)
  t.equal(server.counters.droppedRate, 12 - answered)
})

t.test('the cache holds at most its number of entries and answers from it within the TTL', async (t) => {
  const { up, server, ask } = await lab(t, { limits: { cacheEntries: 2 } })
  for (const n of ['a', 'b', 'a', 'c', 'a']) t.equal(addressesIn(await ask(`${n}.example.test`)).length, 1)
  t.ok(server.cacheSize <= 2, `cache holds ${server.cacheSize}`)
  // a (asked), b (asked), a (hit), c (asked, evicts b: a was used more recently), a (hit)
  t.same(up.asked, ['a.example.test A', 'b.example.test A', 'c.example.test A'])
  t.equal(server.counters.cacheHits, 2)
})

t.test('an upstream that does not answer gives SERVFAIL; forwards in flight are bounded', async (t) => {
  // a port nothing listens on: the query is lost
  const { server, ask } = await lab(t, { upstream: '127.0.0.1:9', limits: { upstreamTimeoutMs: 200, maxPending: 1 } })
  const [first, second] = await Promise.all([ask('a.example.test'), ask('b.example.test')])
  t.same([first && rcodeOf(first), second && rcodeOf(second)], [2, 2], 'both SERVFAIL: one timed out, one found no room')
  t.equal(server.counters.forwarded, 1, 'only one query went upstream')
})

t.test('a large local answer is truncated to what plain UDP carries, with TC set', async (t) => {
  const zone = Zone.build({
    instances: [],
    peers: [{ key: `0x${'2'.repeat(40)}/peer`, value: { owner: OWNER, address: '127.0.0.1' } }],
    dns: [{ key: `${OWNER}/big`, value: { txt: Array.from({ length: 8 }, () => 'x'.repeat(250)) } }],
  })
  const { server, ask } = await lab(t, { zone })
  const r = await ask('big.fog', 'TXT')
  t.ok(r && ((r.flags ?? 0) & packet.TRUNCATED_RESPONSE), 'TC set')
  t.equal(r?.answers?.length, 0)
  t.equal(server.counters.truncated, 1)
})

t.test('a build with more replicas than one datagram carries answers a random subset that fits, never TC', async (t) => {
  const build = 'b'.repeat(55)
  const instances = replicaRecords(build, 30)
  const zone = Zone.build({ instances, dns: [], peers: [{ key: 'x/p', value: { owner: OWNER, address: '127.0.0.1' } }] })
  const { server, ask } = await lab(t, { zone })
  const r = await ask(`${build}.fog`)
  const got = addressesIn(r)
  // 512 bytes, the question, and 75 bytes per record with this 59-byte name (no name compression)
  t.equal(got.length, 5, 'as many addresses as fit')
  t.ok(got.every((a) => /^198\.18\.3\.\d+$/.test(a)), 'each a replica of the build')
  const seen = new Set<string>()
  for (let i = 0; i < 20; i++) for (const a of addressesIn(await ask(`${build}.fog`))) seen.add(a)
  t.ok(seen.size > 5, `the subset changes between queries (${seen.size} of 24 addresses seen in 20 answers)`)
  t.notOk((r?.flags ?? 0) & packet.TRUNCATED_RESPONSE, 'no TC: every lookup of a big build would go to TCP')
  t.equal(server.counters.truncated, 0)
})

t.test('over TCP, a large local answer comes whole, and every replica of a big build', async (t) => {
  const build = 'b'.repeat(55)
  const instances = replicaRecords(build, 20)
  const zone = Zone.build({
    instances,
    peers: [{ key: `0x${'2'.repeat(40)}/peer`, value: { owner: OWNER, address: '127.0.0.1' } }],
    dns: [{ key: `${OWNER}/big`, value: { txt: Array.from({ length: 8 }, () => 'x'.repeat(250)) } }],
  })
  const { server, askTcp } = await lab(t, { zone })
  const big = await askTcp('big.fog', 'TXT')
  t.equal(big?.answers?.length, 8, 'all 8 TXT records (2 KB) over TCP')
  t.notOk((big?.flags ?? 0) & packet.TRUNCATED_RESPONSE, 'no TC over TCP')
  t.equal(addressesIn(await askTcp(`${build}.fog`)).length, 20, 'all 20 replicas (UDP carries 5 of them)')
  t.equal(server.counters.truncated, 0)
})

t.test('a forwarded answer too big for UDP: TC to a UDP client, the whole answer over TCP', async (t) => {
  const { up, server, ask, askTcp } = await lab(t)
  const udp = await ask('big.example.test', 'TXT')
  t.ok(udp && (udp.flags ?? 0) & packet.TRUNCATED_RESPONSE, 'UDP: TC, so the client retries over TCP')
  const tcp = await askTcp('big.example.test', 'TXT')
  t.equal(tcp?.answers?.length, 6, 'TCP: all 6 records, which the node fetched from its upstream over TCP')
  t.equal(tcp && rcodeOf(tcp), 0)
  t.equal(server.counters.forwardedTcp, 1)
  t.same(up.asked, ['big.example.test TXT', 'big.example.test TXT', 'big.example.test TXT tcp'], 'the truncated answer was not cached as if whole')
  t.equal((await askTcp('big.example.test', 'TXT'))?.answers?.length, 6, 'asked again: from the cache')
  t.equal(up.asked.length, 3)
})

t.test('TCP from a stranger, too many connections, idle ones and oversized frames are cut off; pipelining works', async (t) => {
  const stranger = await lab(t, { allow: ['198.18.0.0/15'] })
  const refused = await queryTcp('127.0.0.1', stranger.port, [queryPacket('a.example.test')])
  t.same({ responses: refused.responses.length, closed: refused.closed }, { responses: 0, closed: true }, 'a source outside the allowed ranges is closed unanswered')
  t.equal(stranger.up.asked.length, 0)

  const { server, port, askTcp } = await lab(t, { limits: { tcpConnectionsPerSource: 2, tcpIdleMs: 300 } })
  const piped = await queryTcp('127.0.0.1', port, ['a', 'b', 'c'].map((n, i) => queryPacket(`${n}.example.test`, 'A', i)))
  t.same(piped.responses.map((r) => [r.id, addressesIn(r)[0]]).sort(), [[0, '203.0.113.1'], [1, '203.0.113.2'], [2, '203.0.113.3']], 'three pipelined queries on one connection, three answers matched by id')

  const idle = await queryTcp('127.0.0.1', port, [], { timeoutMs: 3000, hold: true })
  t.ok(idle.closed, 'a connection that sends nothing is closed after tcp_idle_ms')

  const holders = await Promise.all([0, 1].map(() => new Promise<import('node:net').Socket>((resolve) => {
    const c = connect({ host: '127.0.0.1', port }, () => resolve(c))
  })))
  t.teardown(() => holders.forEach((c) => c.destroy()))
  await new Promise((r) => setTimeout(r, 50))
  const third = await queryTcp('127.0.0.1', port, [queryPacket('a.example.test')])
  t.ok(third.closed && !third.responses.length, 'a third connection from the same source is closed at once (2 per source)')
  t.ok(server.counters.droppedTcpConnections >= 1)
  holders.forEach((c) => c.destroy())
  await new Promise((r) => setTimeout(r, 50))

  const oversized = Buffer.alloc(2 + 4)
  oversized.writeUInt16BE(4000, 0)
  const cut = await new Promise<boolean>((resolve) => {
    const c = connect({ host: '127.0.0.1', port }, () => c.write(oversized))
    c.on('error', () => {})
    c.on('close', () => resolve(true))
    setTimeout(() => resolve(false), 2000)
  })
  t.ok(cut, 'a frame announcing a 4000-byte query (over dns_max_request_bytes) closes the connection')
  t.ok(server.counters.droppedSize >= 1)
  t.same(addressesIn(await askTcp('b.example.test')), ['203.0.113.2'], 'a good TCP query after all that is answered')
})

t.test('owner records are checked before they are served', async (t) => {
  t.match(parseOwnerRecord({ a: ['300.1.1.1'] }), { problem: /IPv4/ })
  t.match(parseOwnerRecord({ a: Array.from({ length: 25 }, () => '1.1.1.1') }), { problem: /at most 24/ })
  t.match(parseOwnerRecord({ txt: ['x'.repeat(256)] }), { problem: /255 bytes/ })
  t.match(parseOwnerRecord({}), { problem: /at least one/ })
  t.match(parseOwnerRecord({ a: ['1.1.1.1'], ttl: -1 }), { problem: /ttl/ })
  t.same(parseOwnerRecord({ a: ['1.1.1.1'] }), { record: { a: ['1.1.1.1'], txt: [], ttl: 60 } })
  const zone = Zone.build({ instances: [], peers: [], dns: [{ key: `${OWNER}/bad`, value: { a: 'not a list' } }, { key: `${OWNER}/Bad_Name!`, value: { a: ['1.1.1.1'] } }] })
  t.equal(zone.size, 0, 'invalid records and names are left out of the zone')
})
