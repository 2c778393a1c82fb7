import { FormError } from '../../../../core/errors.js'
import { INTERFACE_NAME } from '../../../../core/patterns.js'
import { saveUserConfig } from '../../../kit/index.js'
import { loadWireGuardKeys } from '../../../net/index.js'
import type { ManageJoinCommand } from '../join.js'
import { formnetFiles } from './formnet-files.js'

export async function manageJoin(cmd: ManageJoinCommand) {
  if (cmd.interface !== undefined && !INTERFACE_NAME.test(cmd.interface)) {
    throw new FormError('USAGE', `--interface "${cmd.interface}" is not an interface name`, { hint: '1-15 letters, digits, . _ or -' })
  }
  const config = await cmd.userConfig()
  const url = cmd.nodeUrl(config, config.formnet.host)
  const files = formnetFiles(cmd, config)
  const keys = await (await loadWireGuardKeys()).loadOrCreateWireGuardKeys(files.keyFile)
  const client = await cmd.signedClient(config, url)
  const res = await client.post<{ address: string; cidr: string; node: { address: string; formnetAddress: string; publicKey: string; endpoint?: string }; peers: unknown[] }>('/v1/net/join', { publicKey: keys.publicKey })
  config.formnet = { ...config.formnet, join: true, address: res.address, cidr: res.cidr, node: res.node.address, host: url, interface: cmd.interface ?? config.formnet.interface ?? 'formnet' }
  await saveUserConfig(cmd.dirs.configDir, config)
  cmd.print(
    { address: res.address, cidr: res.cidr, node: res.node, interface: config.formnet.interface, publicKey: keys.publicKey, peers: res.peers.length },
    [
      `joined formnet as ${res.address} (formnet ${res.cidr})`,
      `admitted by node ${res.node.address} (${res.node.formnetAddress} on formnet)`,
      `${res.peers.length} node(s) to peer with; bring the interface up with \`form manage formnet-up --detach\``,
    ].join('\n'),
  )
}
