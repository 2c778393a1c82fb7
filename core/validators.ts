// Typanion validators for the shared shapes of core/patterns.ts, for schemas (settings, records): the
// error reads as typanion's own (`.path: Expected …`), so config errors name the key as the others do.
import * as t from 'typanion'
import { ADDRESS, ADDRESS_ANY_CASE, HOST_PORT, INTERFACE_NAME, TCP_MULTIADDR, parseIpv4Cidr } from './patterns.js'

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
export const isAddress = checked((v) => ADDRESS_ANY_CASE.test(v), 'an address (0x and 40 hex digits)')
export const isLowerAddress = checked((v) => ADDRESS.test(v), 'an address (0x and 40 lower-case hex digits)')
/** An IPv4 CIDR, or '' where empty means "worked out by the node". */
export const isCidrOrEmpty = checked((v) => v === '' || parseIpv4Cidr(v) !== undefined, 'an IPv4 CIDR such as 10.20.0.0/16, or ""')
