import { parseInstanceKey } from '../../../instances/index.js'

/**
 * The `.fog` names a node answers, computed from state. Light: no DNS library, no I/O.
 *
 * The owner rule: `.fog` is private to each account. A query is answered in the scope of the
 * account that owns the address it comes from: a running instance's address (its observed record)
 * or a developer's formnet address (the `peers` collection). In that scope:
 *   - `<replica>.fog` (the instance id, e.g. `hello-web-1.fog`) is that replica's address;
 *   - `<build>.fog` (the id without its `-<n>`, e.g. `hello-web.fog`) is every running replica;
 *   - `<name>.fog` from the owner's own `dns/<owner>/<name>` records (these win over instance names).
 * A query from an address no account owns, or for another account's names, gets NXDOMAIN: one
 * owner cannot learn that another's names exist. Names outside `.fog` are forwarded upstream.
 */

export const FOG_SUFFIX = 'fog'

/** The longest list of addresses one name holds (a build's replicas beyond it are left out of `<build>.fog`): over TCP a client gets them all, over UDP as many as fit its datagram (server.ts). */
export const MAX_ADDRESSES_PER_NAME = 24

export interface OwnerRecord {
  a: string[]
  txt: string[]
  ttl: number
}

export interface ZoneInput {
  /** records of the `instances` collection: `<owner>/<id>/desired` and `<owner>/<id>/observed/<node>` */
  instances: { key: string; value: unknown }[]
  /** records of the `dns` collection: `<owner>/<name>` */
  dns: { key: string; value: unknown }[]
  /** records of the `peers` collection: `<node>/<peer>` with `{owner, address}` */
  peers: { key: string; value: unknown }[]
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const NAME = /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/

/** A name an owner may publish (relative to `.fog`), lower-cased; undefined when it is not one. */
export function ownerName(name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '').replace(/\.fog$/, '')
  return NAME.test(n) ? n : undefined
}

export const DEFAULT_RECORD_TTL = 60
const MAX_TXT = 8

/** An owner's record value checked as untrusted input: the record, or why it is not one. */
export function parseOwnerRecord(value: unknown): { record: OwnerRecord } | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'a dns record is an object like {"a": ["198.18.0.10"], "ttl": 60}' }
  const v = value as Record<string, unknown>
  const a = v.a ?? []
  const txt = v.txt ?? []
  if (!Array.isArray(a) || a.length > MAX_ADDRESSES_PER_NAME || !a.every((x) => typeof x === 'string' && IPV4.test(x))) {
    return { problem: `"a" must be a list of at most ${MAX_ADDRESSES_PER_NAME} IPv4 addresses` }
  }
  if (!Array.isArray(txt) || txt.length > MAX_TXT || !txt.every((x) => typeof x === 'string' && Buffer.byteLength(x) <= 255)) {
    return { problem: `"txt" must be a list of at most ${MAX_TXT} strings of at most 255 bytes` }
  }
  if (!a.length && !txt.length) return { problem: 'a dns record needs at least one "a" address or "txt" string' }
  const ttl = v.ttl ?? DEFAULT_RECORD_TTL
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 0 || ttl > 86_400) return { problem: '"ttl" must be a whole number of seconds from 0 to 86400' }
  return { record: { a: a as string[], txt: txt as string[], ttl } }
}

/** The build a replica id belongs to: `hello-web-2` → `hello-web`; undefined when the id has no `-<n>`. */
export function buildOf(id: string): string | undefined {
  const m = /^(.+)-\d+$/.exec(id)
  return m ? m[1] : undefined
}

/** Instance and build names answer for this long: a replica that moves is found again soon. */
export const INSTANCE_TTL = 5

/**
 * The owners' own names (the `dns` collection), kept up to date one record at a time: a bulk of name
 * changes costs one update each instead of a re-read of every name. Keys that differ only in case
 * name the same record; the greatest key wins, as it does when the records are read in key order.
 */
export class OwnerNames {
  /** `<owner>/<name>` → record key → record */
  private readonly byName = new Map<string, Map<string, OwnerRecord>>()
  /** owner → name → the record that answers */
  private readonly names = new Map<string, Map<string, OwnerRecord>>()

  static from(records: { key: string; value: unknown }[]): OwnerNames {
    const own = new OwnerNames()
    for (const r of records) own.set(r.key, r.value)
    return own
  }

  /** A record of the `dns` collection changed: `value` undefined when it was deleted. */
  set(key: string, value: unknown): void {
    const slash = key.indexOf('/')
    const name = slash < 0 ? undefined : ownerName(key.slice(slash + 1))
    if (!name) return
    const owner = key.slice(0, slash)
    const parsed = value === undefined ? undefined : parseOwnerRecord(value)
    const id = `${owner}/${name}`
    let keys = this.byName.get(id)
    if (parsed && 'record' in parsed) {
      if (!keys) this.byName.set(id, (keys = new Map()))
      keys.set(key, parsed.record)
    } else keys?.delete(key)
    let scope = this.names.get(owner)
    if (!keys?.size) {
      this.byName.delete(id)
      scope?.delete(name)
      if (scope?.size === 0) this.names.delete(owner)
      return
    }
    const winner = [...keys.keys()].reduce((a, b) => (a > b ? a : b))
    if (!scope) this.names.set(owner, (scope = new Map()))
    scope.set(name, keys.get(winner)!)
  }

  lookup(owner: string, name: string): OwnerRecord | undefined {
    return this.names.get(owner)?.get(name)
  }

  get size(): number {
    let n = 0
    for (const s of this.names.values()) n += s.size
    return n
  }
}

export class Zone {
  /** owner → relative name → record, from running instances */
  private readonly names = new Map<string, Map<string, OwnerRecord>>()
  /** address → owner */
  private readonly owners = new Map<string, string>()

  /** `own`: the owners' names, which win over instance names; shared, so that it can change without a rebuild */
  constructor(private readonly own = new OwnerNames()) {}

  /** A zone from state; without `input.dns`, the owners' names are `own` (kept up to date by its holder). */
  static build(input: Omit<ZoneInput, 'dns'> & { dns?: ZoneInput['dns'] }, own?: OwnerNames): Zone {
    const zone = new Zone(own ?? OwnerNames.from(input.dns ?? []))
    const desired = new Map<string, { state?: unknown }>()
    const running = new Map<string, { ip: string; at: number }>()
    for (const r of input.instances) {
      const k = parseInstanceKey(r.key)
      const v = (r.value ?? {}) as Record<string, unknown>
      if (k?.kind === 'desired') desired.set(`${k.owner}/${k.id}`, v)
      else if (k?.kind === 'observed' && v.state === 'running' && typeof v.ip === 'string' && IPV4.test(v.ip)) {
        const at = typeof v.updatedAt === 'number' ? v.updatedAt : 0
        const key = `${k.owner}/${k.id}`
        // a replica that moved has an old record on its former node: the latest report wins
        if ((running.get(key)?.at ?? -1) < at) running.set(key, { ip: v.ip, at })
      }
    }
    for (const [key, { ip }] of running) {
      if (desired.get(key)?.state !== 'running') continue
      const [owner, id] = key.split('/')
      zone.owners.set(ip, owner)
      const replica = ownerName(id)
      if (!replica) continue
      zone.add(owner, replica, ip)
      const build = buildOf(replica)
      if (build) zone.add(owner, build, ip)
    }
    for (const r of input.peers) {
      const v = (r.value ?? {}) as Record<string, unknown>
      const address = typeof v.address === 'string' ? v.address.replace(/\/32$/, '') : ''
      if (typeof v.owner === 'string' && IPV4.test(address)) zone.owners.set(address, v.owner.toLowerCase())
    }
    return zone
  }

  private add(owner: string, name: string, ip: string): void {
    let scope = this.names.get(owner)
    if (!scope) this.names.set(owner, (scope = new Map()))
    const r = scope.get(name) ?? { a: [], txt: [], ttl: INSTANCE_TTL }
    if (r.a.length < MAX_ADDRESSES_PER_NAME && !r.a.includes(ip)) r.a.push(ip)
    scope.set(name, r)
  }

  /** The account that owns an address (an instance's or a developer's), if any. */
  ownerOf(address: string): string | undefined {
    return this.owners.get(address)
  }

  /** A `.fog` name (without the suffix) in an owner's scope. */
  lookup(owner: string | undefined, name: string): OwnerRecord | undefined {
    if (owner === undefined) return undefined
    const n = name.toLowerCase()
    return this.own.lookup(owner, n) ?? this.names.get(owner)?.get(n)
  }

  /** names answered, the owners' and the instances' (a name both hold counts once) */
  get size(): number {
    let n = this.own.size
    for (const [owner, scope] of this.names) for (const name of scope.keys()) if (!this.own.lookup(owner, name)) n++
    return n
  }
}

/** `hello-web-1.fog.` → `hello-web-1`; undefined when the name is not under `.fog`. */
export function fogName(qname: string): string | undefined {
  const n = qname.toLowerCase().replace(/\.$/, '')
  if (n === FOG_SUFFIX) return ''
  return n.endsWith(`.${FOG_SUFFIX}`) ? n.slice(0, -FOG_SUFFIX.length - 1) : undefined
}
