import type { DeviceState, PeerChange } from '../wireguard/uapi.js'

export interface DesiredPeer {
  publicKey: string
  endpoint?: string
  allowedIps: string[]
  persistentKeepalive?: number
}

const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join()

/** The smallest UAPI change that makes the device's peers equal to the desired list. */
export function planPeers(current: DeviceState, desired: DesiredPeer[]): PeerChange[] {
  const changes: PeerChange[] = []
  const want = new Map(desired.map((p) => [p.publicKey, p]))
  for (const p of current.peers) if (!want.has(p.publicKey)) changes.push({ publicKey: p.publicKey, remove: true })
  for (const d of desired) {
    const cur = current.peers.find((p) => p.publicKey === d.publicKey)
    const change: PeerChange = { publicKey: d.publicKey }
    // an endpoint learned from a handshake is kept unless state names a different one
    if (d.endpoint !== undefined && d.endpoint !== cur?.endpoint) change.endpoint = d.endpoint
    if ((d.persistentKeepalive ?? 0) !== (cur?.persistentKeepalive ?? 0)) change.persistentKeepalive = d.persistentKeepalive ?? 0
    if (!cur || !same(cur.allowedIps, d.allowedIps)) change.allowedIps = d.allowedIps
    if (!cur || Object.keys(change).length > 1) changes.push(change)
  }
  return changes
}
