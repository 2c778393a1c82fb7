import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { randomInt } from 'node:crypto'
import * as packet from '@dnsquery/dns-packet'
import type { Answer, Packet, Question } from '@dnsquery/dns-packet'
import { contains, parseCidr, type Cidr } from '../formnet/ipam.js'
import { fogName, type Zone } from './zone.js'

/**
 * The node's DNS server (UDP): `.fog` names from the zone, everything else forwarded to upstream
 * resolvers with a bounded cache. It faces instances and formnet, so it treats every datagram as
 * hostile: a query from outside the allowed ranges is dropped unanswered (no reflection, no open
 * resolver), requests and responses have a size bound, each source a rate, and forwarding a bound
 * on queries in flight.
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
}

/** Classic DNS over UDP answers 512 bytes; EDNS lets the client ask for more, up to this. */
const MAX_UDP_RESPONSE = 1232
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
}

interface CacheEntry {
  packet: Packet
  expires: number
}

interface Pending {
  client: { address: string; port: number; socket: Socket; id: number; maxSize: number; question: Question }
  upstream: number
  timer: NodeJS.Timeout
  id: number
}

export class DnsServer {
  readonly limits: DnsLimits
  readonly counters: DnsCounters = { queries: 0, answeredLocal: 0, nxdomain: 0, forwarded: 0, cacheHits: 0, droppedSource: 0, droppedRate: 0, droppedMalformed: 0, droppedSize: 0, servfail: 0, truncated: 0 }
  private readonly sockets: Socket[] = []
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
        s.on('message', (msg, rinfo) => this.onQuery(s, msg, rinfo))
        s.on('error', (error) => this.o.log?.warn('DNS socket error', { error: error.message }))
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

  private onQuery(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.queries++
    if (!this.allowed(rinfo.address)) {
      this.counters.droppedSource++
      return
    }
    if (msg.length > this.limits.maxRequestBytes) {
      this.counters.droppedSize++
      return
    }
    if (!this.withinRate(rinfo.address)) {
      this.counters.droppedRate++
      return
    }
    let query: Packet
    try {
      query = packet.decode(msg)
    } catch {
      this.counters.droppedMalformed++
      return
    }
    if (query.type !== 'query') {
      this.counters.droppedMalformed++
      return
    }
    const id = query.id ?? 0
    const question = query.questions?.[0]
    const edns = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined
    const maxSize = Math.max(512, Math.min(MAX_UDP_RESPONSE, edns?.udpPayloadSize ?? 512))
    const reply = (p: Packet) => this.send(socket, rinfo, { ...p, id, questions: question ? [question] : [] }, maxSize)
    if ((query.opcode ?? 'QUERY') !== 'QUERY') return reply({ flags: RCODE.NOTIMP })
    if (query.questions?.length !== 1 || !question) return reply({ flags: RCODE.FORMERR })
    const local = fogName(question.name)
    if (local !== undefined) return reply(this.answerLocal(question, local, rinfo.address, maxSize))
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
    this.forward(socket, rinfo, id, question, maxSize)
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
    // Addresses beyond what one datagram carries are left out (the library does not compress names,
    // and TC would send glibc to TCP, which this server does not serve): a random subset, so every
    // replica gets its share of clients.
    const res: Packet = { type: 'response', id: 0, flags, questions: [q], answers }
    if (answers.every((a) => a.type === 'A') && answers.length > 1) {
      const start = randomInt(0, answers.length)
      answers.push(...answers.splice(0, start))
      while (answers.length > 1 && packet.encodingLength(res) > maxSize) answers.pop()
    }
    return res
  }

  private forward(socket: Socket, rinfo: RemoteInfo, id: number, question: Question, maxSize: number): void {
    if (!this.upstreams.length || this.pending.size >= this.limits.maxPending || !this.upstreamSocket) {
      this.counters.servfail++
      this.send(socket, rinfo, { type: 'response', id, flags: packet.RECURSION_AVAILABLE | RCODE.SERVFAIL, questions: [question] }, maxSize)
      return
    }
    this.counters.forwarded++
    let upId: number
    do upId = randomInt(0, 65536)
    while (this.pending.has(upId))
    const p: Pending = { client: { address: rinfo.address, port: rinfo.port, socket, id, maxSize, question }, upstream: 0, id: upId, timer: undefined as unknown as NodeJS.Timeout }
    this.pending.set(upId, p)
    this.ask(p)
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
      this.counters.servfail++
      const c = p.client
      this.send(c.socket, { address: c.address, port: c.port }, { type: 'response', id: c.id, flags: packet.RECURSION_AVAILABLE | RCODE.SERVFAIL, questions: [c.question] }, c.maxSize)
    }, this.limits.upstreamTimeoutMs)
  }

  private onUpstream(msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length < 12) return
    const p = this.pending.get(msg.readUInt16BE(0))
    const up = p && this.upstreams[p.upstream]
    // only the upstream asked, from its address and port, with the same question (no spoofed answers)
    if (!p || !up || rinfo.address !== up.host || rinfo.port !== up.port) return
    let res: Packet
    try {
      res = packet.decode(msg)
    } catch {
      return
    }
    const q = res.questions?.[0]
    const c = p.client
    if (res.type !== 'response' || !q || q.name.toLowerCase() !== c.question.name.toLowerCase() || q.type !== c.question.type) return
    clearTimeout(p.timer)
    this.pending.delete(p.id)
    const rcode = (res.flags ?? 0) & 0xf
    const answers = (res.answers ?? []).filter((a) => a.type !== 'OPT')
    const authorities = res.authorities ?? []
    if (rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN) {
      const ttls = [...answers, ...authorities].map((a) => a.ttl ?? 0)
      const ttl = Math.min(this.limits.cacheMaxTtlS, answers.length ? Math.min(...ttls) : Math.min(NEGATIVE_TTL_S, ...ttls))
      if (ttl > 0) {
        const key = `${c.question.name.toLowerCase()}/${c.question.type}/${c.question.class ?? 'IN'}`
        if (this.cache.size >= this.limits.cacheEntries) this.cache.delete(this.cache.keys().next().value!)
        this.cache.set(key, { packet: { type: 'response', flags: (res.flags ?? 0) & ~packet.AUTHORITATIVE_ANSWER, answers, authorities }, expires: Date.now() + ttl * 1000 })
      }
    }
    this.send(c.socket, { address: c.address, port: c.port }, { type: 'response', id: c.id, flags: (res.flags ?? 0) | packet.RECURSION_AVAILABLE, questions: [c.question], answers, authorities }, c.maxSize)
  }

  /** Encodes and sends a response no larger than the client takes (else truncated, TC set). */
  private send(socket: Socket, to: { address: string; port: number }, p: Packet, maxSize: number): void {
    let out = packet.encode({ type: 'response', ...p, additionals: [] })
    if (out.length > maxSize) {
      this.counters.truncated++
      out = packet.encode({ type: 'response', id: p.id, flags: (p.flags ?? 0) | packet.TRUNCATED_RESPONSE, questions: p.questions, answers: [], additionals: [] })
    }
    socket.send(out, to.port, to.address)
  }
}

function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text.trim())
  if (!m) throw new Error(`"${text}" is not an IPv4 resolver address (ip or ip:port)`)
  return { host: m[1], port: m[2] ? Number(m[2]) : 53 }
}

/** The host's IPv4 resolvers from resolv.conf text, leaving out the addresses given (our own). */
export function resolversFrom(text: string, exclude: string[] = []): string[] {
  const out: string[] = []
  for (const m of text.matchAll(/^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/gm)) if (!exclude.includes(m[1]) && !out.includes(m[1])) out.push(m[1])
  return out
}
