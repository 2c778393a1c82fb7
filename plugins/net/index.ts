import * as t from 'typanion'
import { API_VERSION, definePlugin } from '../../core/plugin.js'

export interface NetConfig {
  listen: string[]
  announce: string[]
  bootstrap: string[]
  formnet_cidr: string
  formnet_port: number
  bridge_name: string
  bridge_subnet: string
  /** how often the node dials its bootstrap peers again and looks for more peers through the DHT */
  discovery_interval_ms: number
}

const multiaddr = t.cascade(t.isString(), t.matchesRegExp(/^\/(ip4|ip6|dns|dns4|dns6)\//))

export const netConfiguration = {
  schema: t.isObject(
    {
      listen: t.isArray(multiaddr),
      announce: t.isArray(multiaddr),
      bootstrap: t.isArray(multiaddr),
      formnet_cidr: t.cascade(t.isString(), t.matchesRegExp(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/)),
      formnet_port: t.cascade(t.isNumber(), t.isInteger(), t.isInInclusiveRange(1, 65535)),
      bridge_name: t.cascade(t.isString(), t.matchesRegExp(/^[a-zA-Z0-9_.-]{1,15}$/)),
      bridge_subnet: t.isString(),
      discovery_interval_ms: t.cascade(t.isNumber(), t.isInteger(), t.isPositive()),
    },
  ) as t.StrictValidator<unknown, NetConfig>,
  defaults: {
    listen: ['/ip4/0.0.0.0/tcp/3010'],
    announce: [],
    bootstrap: [],
    formnet_cidr: '10.0.0.0/8',
    formnet_port: 51820,
    bridge_name: 'formbr0',
    bridge_subnet: '',
    discovery_interval_ms: 10_000,
  } satisfies NetConfig,
}

export default definePlugin({
  name: 'net',
  version: '0.1.0',
  apiVersion: API_VERSION,
  description: 'formnet (WireGuard) and the libp2p host',
  commands: [],
  services: [{ name: 'p2p', dependsOn: [], start: async (ctx) => (await import('./service/p2p.js')).startP2P(ctx) }],
  configuration: netConfiguration,
})

export type { P2PHandle } from './service/p2p.js'
export { FrameReader, writeFrame } from './lib/p2p/framing.js'
