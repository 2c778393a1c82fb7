import { createSocket } from 'node:dgram'
import * as packet from '@dnsquery/dns-packet'
import type { Packet, RecordType } from '@dnsquery/dns-packet'

/**
 * A small authoritative DNS server for tests: the "upstream" a node forwards to. It answers the A
 * records it is given (TTL 60; a `*` record answers every other name), NXDOMAIN for the rest, and
 * remembers what it was asked.
 */
export async function startUpstream(host: string, port: number, records: Record<string, string>): Promise<{ port: number; asked: string[]; close(): Promise<void> }> {
  const s = createSocket('udp4')
  const asked: string[] = []
  s.on('message', (msg, r) => {
    let q: Packet
    try {
      q = packet.decode(msg)
    } catch {
      return
    }
    const question = q.questions?.[0]
    if (!question) return
    asked.push(`${question.name} ${question.type}`)
    const ip = records[question.name.toLowerCase()] ?? records['*']
    const answers = ip && question.type === 'A' ? [{ type: 'A' as const, name: question.name, ttl: 60, data: ip }] : []
    const flags = packet.AUTHORITATIVE_ANSWER | (ip ? 0 : 3)
    s.send(packet.encode({ type: 'response', id: q.id, flags, questions: [question], answers }), r.port, r.address)
  })
  await new Promise<void>((resolve) => s.bind(port, host, resolve))
  return { port: s.address().port, asked, close: () => new Promise<void>((resolve) => s.close(() => resolve())) }
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
