import { createSocket, type Socket } from 'node:dgram'
import { randomInt } from 'node:crypto'
import { connect, createServer, type Server, type Socket as TcpSocket } from 'node:net'
import * as packet from '@dnsquery/dns-packet'
import type { Answer, Packet, Question } from '@dnsquery/dns-packet'
import { IPV4_PORT, nameserversIn, parseIpv4 } from '../../../../core/patterns.js'
import { contains, parseCidr, type Cidr } from '../formnet/ipam.js'
import { fogName, type Zone } from './zone.js'

/**
 * The node's DNS server (UDP and TCP on the same addresses): `.fog` names from the zone, everything
 * else forwarded to upstream resolvers with a bounded cache. It faces instances and formnet, so it
 * treats every datagram and connection as hostile: a query from outside the allowed ranges is dropped
 * unanswered (no reflection, no open resolver), requests and responses have a size bound, each source
 * a rate, forwarding a bound on queries in flight, and TCP a bound on connections and their idle time.
 */

export interface DnsLimits {
  /** a request larger than this is dropped (a query for one name fits 512 bytes with EDNS) */
  maxRequestBytes: number
  /** entries the forwarding cache holds at most (least recently used go first) */
  cacheEntries: number
  /** upstream TTLs are cut to this (seconds) */
  cacheMaxTtlS: number
  /** queries a second one source may send, and the burst above that rate */
  ratePerS: number
  rateBurst: number
  /** sources whose rate is tracked at once (the oldest is forgotten beyond it) */
  rateSources: number
  /** forwarded queries waiting for an upstream at once; beyond it: SERVFAIL */
  maxPending: number
  /** how long an upstream may take before the next one is asked (then SERVFAIL) */
  upstreamTimeoutMs: number
  /** TCP connections open at once, and from one source address (beyond: closed at once) */
  tcpConnections: number
  tcpConnectionsPerSource: number
  /** a TCP connection with no query for this long is closed (RFC 7766 suggests seconds, not minutes) */
  tcpIdleMs: number
}

export const DEFAULT_DNS_LIMITS: DnsLimits = {
  maxRequestBytes: 512,
  cacheEntries: 10_000,
  cacheMaxTtlS: 300,
  ratePerS: 100,
  rateBurst: 200,
  rateSources: 4096,
  maxPending: 256,
  upstreamTimeoutMs: 2000,
  tcpConnections: 64,
  tcpConnectionsPerSource: 8,
  tcpIdleMs: 10_000,
}

/** Classic DNS over UDP answers 512 bytes; EDNS lets the client ask for more, up to this. */
const MAX_UDP_RESPONSE = 1232
/** DNS over TCP frames a message with a 2-byte length. */
const MAX_TCP_MESSAGE = 65_535
/** Queries one TCP connection may have waiting for an upstream at once (pipelining, RFC 7766). */
const TCP_PIPELINE = 16
/** A negative answer (NXDOMAIN, no data) is cached this long at most. */
const NEGATIVE_TTL_S = 30

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const

export interface DnsServerOptions {
  /** addresses (ip:port) to listen on */
  listen: { host: string; port: number }[]
  /** CIDRs whose sources are answered; everything else is dropped */
  allow: string[]
  /** upstream resolvers (ip or ip:port) */
  upstreams: string[]
  zone: () => Zone
  limits?: Partial<DnsLimits>
  log?: { warn(msg: string, fields?: Record<string, unknown>): void }
}

export interface DnsCounters {
  queries: number
  answeredLocal: number
  nxdomain: number
  forwarded: number
  cacheHits: number
  droppedSource: number
  droppedRate: number
  droppedMalformed: number
  droppedSize: number
  servfail: number
  truncated: number
  tcpConnections: number
  droppedTcpConnections: number
  forwardedTcp: number
}

interface CacheEntry {
  packet: Packet
  expires: number
}

/** Where a query came from and how to answer it (a datagram back, or a frame on its connection). */
interface Client {
  tcp: boolean
  id: number
  maxSize: number
  question: Question
  write(out: Buffer): void
}

interface Pending {
  client: Client
  upstream: number
  timer: NodeJS.Timeout
  id: number
}

export class DnsServer {
  readonly limits: DnsLimits
  readonly counters: DnsCounters = { queries: 0, answeredLocal: 0, nxdomain: 0, forwarded: 0, cacheHits: 0, droppedSource: 0, droppedRate: 0, droppedMalformed: 0, droppedSize: 0, servfail: 0, truncated: 0, tcpConnections: 0, droppedTcpConnections: 0, forwardedTcp: 0 }
  private readonly sockets: Socket[] = []
  private readonly tcpServers: Server[] = []
  private readonly connections = new Set<TcpSocket>()
  private readonly connectionsBySource = new Map<string, number>()
  private upstreamSocket?: Socket
  private readonly allow: Cidr[]
  private readonly upstreams: { host: string; port: number }[]
  private readonly cache = new Map<string, CacheEntry>()
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly pending = new Map<number, Pending>()

  constructor(private readonly o: DnsServerOptions) {
    this.limits = { ...DEFAULT_DNS_LIMITS, ...o.limits }
    this.allow = o.allow.map((c) => parseCidr(c))
    this.upstreams = o.upstreams.map(parseHostPort)
  }

  /** Binds every listen address; rejects when one cannot be bound (the others are closed again). */
  async start(): Promise<void> {
    try {
      for (const l of this.o.listen) {
        const s = createSocket({ type: 'udp4' })
        this.sockets.push(s)
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject)
          s.bind(l.port, l.host, () => {
            s.off('error', reject)
            resolve()
          })
        })
        s.on('message', (msg, rinfo) => this.onQuery(msg, rinfo.address, false, (out) => s.send(out, rinfo.port, rinfo.address)))
        s.on('error', (error) => this.o.log?.warn('DNS socket error', { error: error.message }))
        // TCP on the same address and port (a listen port of 0 takes the one UDP was given)
        const tcp = createServer((c) => this.onConnection(c))
        this.tcpServers.push(tcp)
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject)
          tcp.listen(s.address().port, l.host, () => {
            tcp.off('error', reject)
            resolve()
          })
        })
        tcp.on('error', (error) => this.o.log?.warn('DNS TCP listener error', { error: error.message }))
      }
      const up = createSocket({ type: 'udp4' })
      this.upstreamSocket = up
      await new Promise<void>((resolve) => up.bind(0, resolve))
      up.on('message', (msg, rinfo) => this.onUpstream(msg, rinfo))
      up.on('error', (error) => this.o.log?.warn('DNS upstream socket error', { error: error.message }))
    } catch (error) {
      await this.stop()
      throw error
    }
  }

  /** The ports actually bound (a listen port of 0 picks one). */
  addresses(): { address: string; port: number }[] {
    return this.sockets.map((s) => s.address())
  }

  async stop(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer)
    this.pending.clear()
    for (const s of [...this.sockets.splice(0), ...(this.upstreamSocket ? [this.upstreamSocket] : [])]) await new Promise<void>((resolve) => s.close(() => resolve()))
    this.upstreamSocket = undefined
    for (const c of this.connections) c.destroy()
    for (const tcp of this.tcpServers.splice(0)) await new Promise<void>((resolve) => tcp.close(() => resolve()))
  }

  /** One TCP client: 2-byte-length-prefixed queries, answered in whatever order they complete. */
  private onConnection(c: TcpSocket): void {
    const source = c.remoteAddress?.replace(/^::ffff:/, '') ?? ''
    const fromSource = this.connectionsBySource.get(source) ?? 0
    if (!this.allowed(source)) {
      this.counters.droppedSource++
      c.destroy()
      return
    }
    if (this.connections.size >= this.limits.tcpConnections || fromSource >= this.limits.tcpConnectionsPerSource) {
      this.counters.droppedTcpConnections++
      c.destroy()
      return
    }
    this.counters.tcpConnections++
    this.connections.add(c)
    this.connectionsBySource.set(source, fromSource + 1)
    c.once('close', () => {
      this.connections.delete(c)
      const left = (this.connectionsBySource.get(source) ?? 1) - 1
      if (left > 0) this.connectionsBySource.set(source, left)
      else this.connectionsBySource.delete(source)
    })
    c.on('error', () => c.destroy())
    c.setTimeout(this.limits.tcpIdleMs, () => c.destroy())
    let buffered: Buffer = Buffer.alloc(0)
    let waiting = 0
    const write = (out: Buffer) => {
      waiting--
      if (c.destroyed) return
      c.write(tcpFrame(out))
      if (c.isPaused() && waiting < TCP_PIPELINE) c.resume()
    }
    c.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0)
        // a query too big to be one is not read further: what follows it cannot be framed honestly
        if (length > this.limits.maxRequestBytes) {
          this.counters.queries++
          this.counters.droppedSize++
          c.destroy()
          return
        }
        if (buffered.length < 2 + length) break
        const msg = buffered.subarray(2, 2 + length)
        buffered = buffered.subarray(2 + length)
        waiting++
        if (!this.onQuery(msg, source, true, write)) waiting--
      }
      // a client that sends faster than it reads its answers waits for them
      if (waiting >= TCP_PIPELINE) c.pause()
    })
  }

  get cacheSize(): number {
    return this.cache.size
  }

  private allowed(address: string): boolean {
    return this.allow.some((c) => contains(c, address))
  }

  /** Token bucket per source address; the table of sources is bounded (oldest forgotten). */
  private withinRate(address: string): boolean {
    const now = Date.now()
    let b = this.buckets.get(address)
    if (!b) {
      if (this.buckets.size >= this.limits.rateSources) this.buckets.delete(this.buckets.keys().next().value!)
      b = { tokens: this.limits.rateBurst, at: now }
    } else this.buckets.delete(address)
    this.buckets.set(address, b)
    b.tokens = Math.min(this.limits.rateBurst, b.tokens + ((now - b.at) / 1000) * this.limits.ratePerS)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** Handles one query; false when it was dropped (nothing will be written back). */
  private onQuery(msg: Buffer, source: string, tcp: boolean, write: (out: Buffer) => void): boolean {
    this.counters.queries++
    if (!this.allowed(source)) {
      this.counters.droppedSource++
      return false
    }
    if (msg.length > this.limits.maxRequestBytes) {
      this.counters.droppedSize++
      return false
    }
    if (!this.withinRate(source)) {
      this.counters.droppedRate++
      return false
    }
    let query: Packet
    try {
      query = packet.decode(msg)
    } catch {
      this.counters.droppedMalformed++
      return false
    }
    if (query.type !== 'query') {
      this.counters.droppedMalformed++
      return false
    }
    const id = query.id ?? 0
    const question = query.questions?.[0]
    const edns = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined
    const maxSize = tcp ? MAX_TCP_MESSAGE : Math.max(512, Math.min(MAX_UDP_RESPONSE, edns?.udpPayloadSize ?? 512))
    const reply = (p: Packet) => {
      this.send(write, { ...p, id, questions: question ? [question] : [] }, maxSize)
      return true
    }
    if ((query.opcode ?? 'QUERY') !== 'QUERY') return reply({ flags: RCODE.NOTIMP })
    if (query.questions?.length !== 1 || !question) return reply({ flags: RCODE.FORMERR })
    const local = fogName(question.name)
    if (local !== undefined) return reply(this.answerLocal(question, local, source, maxSize))
    const key = `${question.name.toLowerCase()}/${question.type}/${question.class ?? 'IN'}`
    const hit = this.cache.get(key)
    if (hit && hit.expires > Date.now()) {
      this.cache.delete(key)
      this.cache.set(key, hit)
      this.counters.cacheHits++
      const left = Math.max(0, Math.ceil((hit.expires - Date.now()) / 1000))
      const ttl = (rs?: Answer[]) => rs?.map((a) => (a.type === 'OPT' ? a : { ...a, ttl: Math.min(a.ttl ?? 0, left) })) as Answer[] | undefined
      return reply({ ...hit.packet, answers: ttl(hit.packet.answers), authorities: ttl(hit.packet.authorities), additionals: [] })
    }
    if (hit) this.cache.delete(key)
    this.forward({ tcp, id, maxSize, question, write })
    return true
  }

  private answerLocal(q: Question, name: string, source: string, maxSize: number): Packet {
    const flags = packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE
    const zone = this.o.zone()
    const r = zone.lookup(zone.ownerOf(source), name)
    if (!r) {
      this.counters.nxdomain++
      return { type: 'response', flags: flags | RCODE.NXDOMAIN }
    }
    this.counters.answeredLocal++
    const answers: Answer[] = []
    if (q.type === 'A' || q.type === 'ANY') for (const a of r.a) answers.push({ type: 'A', name: q.name, ttl: r.ttl, data: a })
    if (q.type === 'TXT' || q.type === 'ANY') for (const t of r.txt) answers.push({ type: 'TXT', name: q.name, ttl: r.ttl, data: t })
    // An existing name without this type is NOERROR with no answers (so resolvers try A after AAAA).
    // Addresses beyond what one datagram carries are left out rather than TC set (the library does not
    // compress names, and a build's many replicas would send every lookup to TCP): a random subset, so
    // every replica gets its share of clients; a client asking over TCP gets them all.
    const res: Packet = { type: 'response', id: 0, flags, questions: [q], answers }
    if (answers.every((a) => a.type === 'A') && answers.length > 1) {
      const start = randomInt(0, answers.length)
      answers.push(...answers.splice(0, start))
      while (answers.length > 1 && packet.encodingLength(res) > maxSize) answers.pop()
    }
    return res
  }

  private forward(client: Client): void {
    if (!this.upstreams.length || this.pending.size >= this.limits.maxPending || !this.upstreamSocket) {
      this.servfail(client)
      return
    }
    this.counters.forwarded++
    let upId: number
    do upId = randomInt(0, 65536)
    while (this.pending.has(upId))
    const p: Pending = { client, upstream: 0, id: upId, timer: undefined as unknown as NodeJS.Timeout }
    this.pending.set(upId, p)
    this.ask(p)
  }

  private servfail(c: Client): void {
    this.counters.servfail++
    this.send(c.write, { type: 'response', id: c.id, flags: packet.RECURSION_AVAILABLE | RCODE.SERVFAIL, questions: [c.question] }, c.maxSize)
  }

  private ask(p: Pending): void {
    const up = this.upstreams[p.upstream]
    // our own query, not the client's bytes: only one question, recursion desired, a fresh random id
    const q = packet.encode({ type: 'query', id: p.id, flags: packet.RECURSION_DESIRED, questions: [p.client.question], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: MAX_UDP_RESPONSE } as unknown as Answer] })
    this.upstreamSocket!.send(q, up.port, up.host)
    p.timer = setTimeout(() => {
      if (p.upstream + 1 < this.upstreams.length) {
        p.upstream++
        this.ask(p)
        return
      }
      this.pending.delete(p.id)
      this.servfail(p.client)
    }, this.limits.upstreamTimeoutMs)
  }

  private onUpstream(msg: Buffer, rinfo: { address: string; port: number }): void {
    if (msg.length < 12) return
    const p = this.pending.get(msg.readUInt16BE(0))
    const up = p && this.upstreams[p.upstream]
    // only the upstream asked, from its address and port, with the same question (no spoofed answers)
    if (!p || !up || rinfo.address !== up.host || rinfo.port !== up.port) return
    const res = this.decodeAnswer(msg, p)
    if (!res) return
    clearTimeout(p.timer)
    this.pending.delete(p.id)
    // a client over TCP takes what did not fit the upstream's datagram: ask that upstream over TCP
    if (p.client.tcp && (res.flags ?? 0) & packet.TRUNCATED_RESPONSE) this.askOverTcp(p, up)
    else this.deliver(p.client, res)
  }

  /** The upstream's response to `p`'s question, or undefined when it is not one. */
  private decodeAnswer(msg: Buffer, p: Pending): Packet | undefined {
    let res: Packet
    try {
      res = packet.decode(msg)
    } catch {
      return undefined
    }
    const q = res.questions?.[0]
    const c = p.client
    if (res.type !== 'response' || res.id !== p.id || !q || q.name.toLowerCase() !== c.question.name.toLowerCase() || q.type !== c.question.type) return undefined
    return res
  }

  /** Asks one upstream over TCP (bounded in time and size); SERVFAIL when that fails. */
  private askOverTcp(p: Pending, up: { host: string; port: number }): void {
    this.counters.forwardedTcp++
    const frame = tcpFrame(packet.encode({ type: 'query', id: p.id, flags: packet.RECURSION_DESIRED, questions: [p.client.question] }))
    const conn = connect({ host: up.host, port: up.port })
    let got = Buffer.alloc(0)
    let done = false
    const finish = (res?: Packet) => {
      if (done) return
      done = true
      clearTimeout(timer)
      conn.destroy()
      if (res) this.deliver(p.client, res)
      else this.servfail(p.client)
    }
    const timer = setTimeout(() => finish(), this.limits.upstreamTimeoutMs)
    conn.on('error', () => finish())
    conn.on('close', () => finish())
    conn.on('connect', () => conn.write(frame))
    conn.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) finish(this.decodeAnswer(got.subarray(2, 2 + got.readUInt16BE(0)), p))
    })
  }

  /** Caches an upstream's answer and passes it to the client. */
  private deliver(c: Client, res: Packet): void {
    const rcode = (res.flags ?? 0) & 0xf
    const answers = (res.answers ?? []).filter((a) => a.type !== 'OPT')
    const authorities = res.authorities ?? []
    // a truncated answer is passed on (the client retries over TCP) but never cached as the whole one
    if ((rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN) && !((res.flags ?? 0) & packet.TRUNCATED_RESPONSE)) {
      const ttls = [...answers, ...authorities].map((a) => a.ttl ?? 0)
      const ttl = Math.min(this.limits.cacheMaxTtlS, answers.length ? Math.min(...ttls) : Math.min(NEGATIVE_TTL_S, ...ttls))
      if (ttl > 0) {
        const key = `${c.question.name.toLowerCase()}/${c.question.type}/${c.question.class ?? 'IN'}`
        if (this.cache.size >= this.limits.cacheEntries) this.cache.delete(this.cache.keys().next().value!)
        this.cache.set(key, { packet: { type: 'response', flags: (res.flags ?? 0) & ~packet.AUTHORITATIVE_ANSWER, answers, authorities }, expires: Date.now() + ttl * 1000 })
      }
    }
    this.send(c.write, { type: 'response', id: c.id, flags: (res.flags ?? 0) | packet.RECURSION_AVAILABLE, questions: [c.question], answers, authorities }, c.maxSize)
  }

  /** Encodes and sends a response no larger than the client takes (else truncated, TC set). */
  private send(write: (out: Buffer) => void, p: Packet, maxSize: number): void {
    let out = packet.encode({ type: 'response', ...p, additionals: [] })
    if (out.length > maxSize) {
      this.counters.truncated++
      out = packet.encode({ type: 'response', id: p.id, flags: (p.flags ?? 0) | packet.TRUNCATED_RESPONSE, questions: p.questions, answers: [], additionals: [] })
    }
    write(Buffer.from(out))
  }
}

/** A DNS message as TCP carries it: its 2-byte length, then the message (RFC 1035 4.2.2). */
export function tcpFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(2 + message.length)
  frame.writeUInt16BE(message.length, 0)
  frame.set(message, 2)
  return frame
}

function parseHostPort(text: string): { host: string; port: number } {
  const m = IPV4_PORT.exec(text.trim())
  if (!m || !parseIpv4(m[1])) throw new Error(`"${text}" is not an IPv4 resolver address (ip or ip:port)`)
  return { host: m[1], port: m[2] ? Number(m[2]) : 53 }
}

/** The host's IPv4 resolvers from resolv.conf text, leaving out the addresses given (our own). */
export function resolversFrom(text: string, exclude: string[] = []): string[] {
  const out: string[] = []
  for (const address of nameserversIn(text)) if (!exclude.includes(address) && !out.includes(address)) out.push(address)
  return out
}
