// Typanion validators for the shared shapes of core/patterns.ts, for schemas (settings, records): the
// error reads as typanion's own (`.path: Expected …`), so config errors name the key as the others do.
import * as t from 'typanion'
import { ADDRESS, ADDRESS_ANY_CASE, HOST_PORT, INTERFACE_NAME, IPV4_PORT, TCP_MULTIADDR, WIREGUARD_ENDPOINT, parseIpv4, parseIpv4Cidr } from './patterns.js'

function checked(test: (value: string) => boolean, expected: string): t.StrictValidator<unknown, string> {
  return t.cascade(
    t.isString(),
    t.makeValidator<string>({
      test: (value, state) => {
        if (test(value)) return true
        state?.errors?.push(`${state.p ?? '.'}: Expected ${expected} (got ${JSON.stringify(value)})`)
        return false
      },
    }),
  )
}

export const isCidr = checked((v) => parseIpv4Cidr(v) !== undefined, 'an IPv4 CIDR such as 10.20.0.0/16')
export const isInterfaceName = checked((v) => INTERFACE_NAME.test(v), 'an interface name (1-15 letters, digits, _ . -)')
export const isTcpMultiaddr = checked((v) => TCP_MULTIADDR.test(v), 'a TCP multiaddr such as /ip4/0.0.0.0/tcp/3010')
export const isHostPort = checked((v) => HOST_PORT.test(v), 'host:port such as 0.0.0.0:3004')
/** A WireGuard endpoint as peers accept it, or '' where empty means "worked out by the node". */
export const isEndpointOrEmpty = checked((v) => v === '' || WIREGUARD_ENDPOINT.test(v), 'host:port such as 203.0.113.5:51820, or ""')
export const isAddress = checked((v) => ADDRESS_ANY_CASE.test(v), 'an address (0x and 40 hex digits)')
export const isLowerAddress = checked((v) => ADDRESS.test(v), 'an address (0x and 40 lower-case hex digits)')
/** An IPv4 CIDR, or '' where empty means "worked out by the node". */
export const isCidrOrEmpty = checked((v) => v === '' || parseIpv4Cidr(v) !== undefined, 'an IPv4 CIDR such as 10.20.0.0/16, or ""')

/** `ip`, `ip:port` or either: a dotted IPv4 address (octets at most 255), with a port when `port` says so. */
function ipv4(port: 'none' | 'required' | 'optional'): (value: string) => boolean {
  return (value) => {
    const m = IPV4_PORT.exec(value)
    if (!m || !parseIpv4(m[1])) return false
    return port === 'optional' || (port === 'required') === (m[2] !== undefined)
  }
}
export const isIpv4 = checked(ipv4('none'), 'an IPv4 address such as 198.18.0.1')
export const isIpv4Port = checked(ipv4('required'), 'ip:port such as 198.18.0.1:53')
export const isIpv4MaybePort = checked(ipv4('optional'), 'an IPv4 address or ip:port such as 1.1.1.1 or 198.18.0.1:53')
