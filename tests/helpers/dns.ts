import { createSocket } from 'node:dgram'
import * as packet from '@dnsquery/dns-packet'
import { connect, createServer } from 'node:net'
import type { Answer, Packet, RecordType } from '@dnsquery/dns-packet'
import { tcpFrame } from '../../plugins/net/lib/dns/server.js'

/**
 * A small authoritative DNS server for tests: the "upstream" a node forwards to, over UDP and TCP on
 * one port. It answers the A records it is given (TTL 60; a `*` record answers every other name) and
 * the TXT records of `txt`, NXDOMAIN for the rest, and remembers what it was asked (and how). Over UDP
 * an answer bigger than 512 bytes is sent truncated (TC, no answers), as real servers do.
 */
export async function startUpstream(host: string, port: number, records: Record<string, string>, txt: Record<string, string[]> = {}): Promise<{ port: number; asked: string[]; close(): Promise<void> }> {
  const s = createSocket('udp4')
  const asked: string[] = []
  const answer = (msg: Buffer, tcp: boolean): Buffer | undefined => {
    let q: Packet
    try {
      q = packet.decode(msg)
    } catch {
      return undefined
    }
    const question = q.questions?.[0]
    if (!question) return undefined
    asked.push(`${question.name} ${question.type}${tcp ? ' tcp' : ''}`)
    const name = question.name.toLowerCase()
    const ip = records[name] ?? records['*']
    const answers: Answer[] = ip && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: ip }] : []
    if (question.type === 'TXT') for (const t of txt[name] ?? []) answers.push({ type: 'TXT', name: question.name, ttl: 60, data: t })
    const flags = packet.AUTHORITATIVE_ANSWER | (ip || txt[name] ? 0 : 3)
    const out = Buffer.from(packet.encode({ type: 'response', id: q.id, flags, questions: [question], answers }))
    if (tcp || out.length <= 512) return out
    return Buffer.from(packet.encode({ type: 'response', id: q.id, flags: flags | packet.TRUNCATED_RESPONSE, questions: [question], answers: [] }))
  }
  s.on('message', (msg, r) => {
    const out = answer(msg, false)
    if (out) s.send(out, r.port, r.address)
  })
  await new Promise<void>((resolve) => s.bind(port, host, resolve))
  const tcp = createServer((c) => {
    let got = Buffer.alloc(0)
    c.on('error', () => c.destroy())
    c.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      while (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        const out = answer(got.subarray(2, 2 + got.readUInt16BE(0)), true)
        got = got.subarray(2 + got.readUInt16BE(0))
        if (out) c.write(tcpFrame(out))
      }
    })
  })
  await new Promise<void>((resolve) => tcp.listen(s.address().port, host, resolve))
  return {
    port: s.address().port,
    asked,
    close: async () => {
      await new Promise<void>((resolve) => s.close(() => resolve()))
      await new Promise<void>((resolve) => tcp.close(() => resolve()))
    },
  }
}

/** One query; the decoded response, or undefined when none came within `timeoutMs`. */
export async function query(host: string, port: number, name: string, type: RecordType = 'A', o: { timeoutMs?: number; raw?: Uint8Array } = {}): Promise<Packet | undefined> {
  const s = createSocket('udp4')
  const id = Math.floor(Math.random() * 65536)
  const bytes = o.raw ?? packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] })
  try {
    return await new Promise<Packet | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), o.timeoutMs ?? 1500)
      s.on('message', (msg) => {
        clearTimeout(timer)
        resolve(packet.decode(msg))
      })
      s.send(bytes, port, host)
    })
  } finally {
    s.close()
  }
}

/** The response code of a decoded response: 0 NOERROR, 3 NXDOMAIN, 5 REFUSED, ... */
export const rcodeOf = (p: Packet) => (p.flags ?? 0) & 0xf
export const addressesIn = (p: Packet | undefined) => (p?.answers ?? []).filter((a) => a.type === 'A').map((a) => a.data as string).sort()

/**
 * Queries over one TCP connection (2-byte length frames, sent at once: pipelined). The responses in
 * the order they came, and whether the server closed the connection, after `timeoutMs` or once every
 * query has its answer.
 */
export async function queryTcp(host: string, port: number, messages: Uint8Array[], o: { timeoutMs?: number; hold?: boolean } = {}): Promise<{ responses: Packet[]; closed: boolean }> {
  const c = connect({ host, port })
  const responses: Packet[] = []
  let got = Buffer.alloc(0)
  let closed = false
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, o.timeoutMs ?? 1500)
    c.on('error', () => {})
    c.on('close', () => {
      closed = true
      clearTimeout(timer)
      resolve()
    })
    c.on('connect', () => {
      for (const m of messages) c.write(tcpFrame(m))
    })
    c.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      while (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        responses.push(packet.decode(got.subarray(2, 2 + got.readUInt16BE(0))))
        got = got.subarray(2 + got.readUInt16BE(0))
      }
      if (!o.hold && responses.length >= messages.length) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  c.destroy()
  return { responses, closed }
}

export const queryPacket = (name: string, type: RecordType = 'A', id = Math.floor(Math.random() * 65536)) => packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] })
