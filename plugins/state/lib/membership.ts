import { compareTimestamps, type Timestamp } from './hlc.js'

/**
 * Who is a node of this network, computed from the `members` records (members/<node>/<admin> =
 * {status}) and the genesis admins of the operator config. Every replica holds the same records
 * (last writer wins per key), so every replica computes the same members and the same order.
 *
 * A node is a member when it is a genesis admin, or when at least `threshold` admins' latest
 * record for it says "admitted". Its rank (admission order) is what contested claims are decided
 * by: genesis admins first (by address), then by the time of the admission that completed the
 * threshold (a time the admins chose, not the node), ties by address.
 */
export interface MembershipOptions {
  /** the genesis admins (operator or node addresses); undefined: an open store where everyone counts (unit tests, tools) */
  admins?: string[]
  /** how many admins' admissions make a member */
  threshold?: number
}

interface Admission {
  member: string
  admin: string
  t: Timestamp
  status: string
}

export interface MemberInfo {
  address: string
  rank: number
  /** genesis admin, or admitted by admins */
  genesis: boolean
  /** the admission that completed the threshold */
  since?: Timestamp
  admittedBy: string[]
}

export class Membership {
  private readonly admissions = new Map<string, Admission>()
  private cache?: Map<string, MemberInfo>
  readonly admins: Set<string> | undefined
  readonly threshold: number

  constructor(options: MembershipOptions) {
    this.admins = options.admins ? new Set(options.admins) : undefined
    this.threshold = Math.max(1, options.threshold ?? 1)
  }

  get open(): boolean {
    return this.admins === undefined
  }

  /** Takes the current winning record of members/<key> (deleted: value undefined). */
  update(key: string, author: string, t: Timestamp, value: unknown): void {
    const [member, admin] = key.split('/')
    const status = (value as { status?: unknown } | undefined)?.status
    if (!member || admin !== author || typeof status !== 'string') this.admissions.delete(key)
    else this.admissions.set(key, { member, admin, t, status })
    this.cache = undefined
  }

  isAdmin(address: string): boolean {
    return this.admins === undefined || this.admins.has(address)
  }

  isMember(address: string): boolean {
    return this.admins === undefined || this.members().has(address)
  }

  /** Admission order (0 first); undefined for a non-member. In an open store everyone ranks 0. */
  rank(address: string): number | undefined {
    return this.admins === undefined ? 0 : this.members().get(address)?.rank
  }

  /** Every member in admission order. */
  members(): Map<string, MemberInfo> {
    if (this.cache) return this.cache
    const admins = this.admins ?? new Set<string>()
    const byMember = new Map<string, Admission[]>()
    for (const a of this.admissions.values()) {
      if (a.status !== 'admitted' || !admins.has(a.admin) || admins.has(a.member)) continue
      const list = byMember.get(a.member)
      if (list) list.push(a)
      else byMember.set(a.member, [a])
    }
    const admitted: Omit<MemberInfo, 'rank'>[] = []
    for (const [member, list] of byMember) {
      if (list.length < this.threshold) continue
      list.sort((x, y) => compareTimestamps(x.t, y.t) || (x.admin < y.admin ? -1 : 1))
      admitted.push({ address: member, genesis: false, since: list[this.threshold - 1].t, admittedBy: list.map((a) => a.admin) })
    }
    admitted.sort((x, y) => compareTimestamps(x.since!, y.since!) || (x.address < y.address ? -1 : 1))
    const ordered = [...[...admins].sort().map((address) => ({ address, genesis: true, admittedBy: [] as string[] })), ...admitted]
    this.cache = new Map(ordered.map((m, rank) => [m.address, { ...m, rank }]))
    return this.cache
  }
}
