import { connect } from 'node:net'
import { FormError } from '../../../../core/errors.js'
import { fromHex, toHex } from './keys.js'

/**
 * The cross-platform WireGuard UAPI (https://www.wireguard.com/xplatform/): `get=1` and `set=1`
 * text requests on the interface's Unix socket, answered by key=value lines and `errno=N`.
 */

export interface PeerState {
  publicKey: string
  endpoint?: string
  allowedIps: string[]
  persistentKeepalive?: number
  /** seconds since the epoch; 0 when there was no handshake */
  lastHandshake: number
  rxBytes: number
  txBytes: number
}

export interface DeviceState {
  privateKey?: string
  listenPort?: number
  peers: PeerState[]
}

export interface PeerChange {
  publicKey: string
  remove?: boolean
  endpoint?: string
  persistentKeepalive?: number
  /** replaces the peer's allowed IPs */
  allowedIps?: string[]
}

export interface DeviceChange {
  privateKey?: string
  listenPort?: number
  peers?: PeerChange[]
}

function request(socket: string, body: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket)
    let out = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new FormError('WG_UAPI_TIMEOUT', `the WireGuard interface did not answer on ${socket}`))
    }, timeoutMs)
    s.on('data', (d) => {
      out += d
      // every response ends with errno=N and an empty line
      if (/errno=-?\d+\n\n$/.test(out)) {
        clearTimeout(timer)
        s.end()
        resolve(out)
      }
    })
    s.on('error', (error) => {
      clearTimeout(timer)
      reject(new FormError('WG_UAPI_UNREACHABLE', `cannot reach the WireGuard interface at ${socket}: ${error.message}`, { hint: 'is the interface up (wireguard-go running)?' }))
    })
    s.write(body)
  })
}

function errnoOf(text: string): number {
  return Number(/errno=(-?\d+)/.exec(text)?.[1] ?? NaN)
}

export function parseGet(text: string): DeviceState {
  const state: DeviceState = { peers: [] }
  let peer: PeerState | undefined
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=')
    if (eq === -1) continue
    const key = line.slice(0, eq)
    const value = line.slice(eq + 1)
    if (key === 'public_key') state.peers.push((peer = { publicKey: fromHex(value), allowedIps: [], lastHandshake: 0, rxBytes: 0, txBytes: 0 }))
    else if (!peer && key === 'private_key') state.privateKey = fromHex(value)
    else if (!peer && key === 'listen_port') state.listenPort = Number(value)
    else if (peer && key === 'endpoint') peer.endpoint = value
    else if (peer && key === 'allowed_ip') peer.allowedIps.push(value)
    else if (peer && key === 'persistent_keepalive_interval') peer.persistentKeepalive = Number(value)
    else if (peer && key === 'last_handshake_time_sec') peer.lastHandshake = Number(value)
    else if (peer && key === 'rx_bytes') peer.rxBytes = Number(value)
    else if (peer && key === 'tx_bytes') peer.txBytes = Number(value)
  }
  return state
}

export function serializeSet(change: DeviceChange): string {
  const lines = ['set=1']
  if (change.privateKey !== undefined) lines.push(`private_key=${toHex(change.privateKey)}`)
  if (change.listenPort !== undefined) lines.push(`listen_port=${change.listenPort}`)
  for (const p of change.peers ?? []) {
    lines.push(`public_key=${toHex(p.publicKey)}`)
    if (p.remove) {
      lines.push('remove=true')
      continue
    }
    if (p.endpoint !== undefined) lines.push(`endpoint=${p.endpoint}`)
    if (p.persistentKeepalive !== undefined) lines.push(`persistent_keepalive_interval=${p.persistentKeepalive}`)
    if (p.allowedIps !== undefined) {
      lines.push('replace_allowed_ips=true')
      for (const ip of p.allowedIps) lines.push(`allowed_ip=${ip}`)
    }
  }
  return lines.join('\n') + '\n\n'
}

export async function uapiGet(socket: string): Promise<DeviceState> {
  const text = await request(socket, 'get=1\n\n')
  const errno = errnoOf(text)
  if (errno !== 0) throw new FormError('WG_UAPI_ERROR', `the WireGuard interface refused get (errno ${errno})`)
  return parseGet(text)
}

export async function uapiSet(socket: string, change: DeviceChange): Promise<void> {
  const text = await request(socket, serializeSet(change))
  const errno = errnoOf(text)
  // the request holds the private key: never echo it in an error
  if (errno !== 0) throw new FormError('WG_UAPI_ERROR', `the WireGuard interface refused the configuration (errno ${errno})`, { hint: 'check the peers\' keys, endpoints and allowed IPs' })
}
