import { FormError } from '../../../../core/errors.js'
import type { Logger } from '../../../../core/log.js'
import type { StateHandle } from '../../../state/index.js'
import { conflictsWith, hostConflictError, type HostNetwork } from '../../lib/formnet/hostnet.js'
import { chooseSubnet, formatCidr, parseCidr, subnetFromKey, within, type Cidr } from '../../lib/formnet/ipam.js'
import { claimsOf, formnetView, type FormnetView } from '../../lib/formnet/peers.js'

export interface ClaimDeps {
  state: Pick<StateHandle, 'all' | 'put'>
  /** this node's address */
  me: string
  config: { formnet_cidr: string; formnet_subnet_prefix: number }
  bounds: { space: Cidr; prefix: number }
  readView(): Promise<FormnetView>
  /** the host's own networks, besides the links formnet manages */
  hostNetworks(): Promise<HostNetwork[]>
  log: Logger
}

/**
 * A subnet claim: the earliest claim of a subnet wins on every replica; a node that lost claims
 * another. The node claims only a subnet that overlaps nothing the host already uses, and keeps
 * one it holds only while that stays true. Returns the subnet this node holds.
 */
export async function claimSubnet({ state, me, config, bounds, readView, hostNetworks, log }: ClaimDeps): Promise<string> {
  const space = bounds.space
  for (;;) {
    const host = await hostNetworks()
    const records = await state.all('cidrs')
    // a subnet won under another formnet_cidr, which the instance bridge keeps: say so rather than hold two
    const old = formnetView(records, [], []).subnets.get(me)
    if (old && !(within(space, parseCidr(old)) && parseCidr(old).prefix === bounds.prefix)) {
      throw new FormError('FORMNET_RANGE_CHANGED', `this node holds formnet subnet ${old}, not a /${bounds.prefix} of [net] formnet_cidr ${config.formnet_cidr}`, {
        hint: 'set [net] formnet_cidr and formnet_subnet_prefix back to what this network uses (networks started before the default became 198.18.0.0/15 use 10.0.0.0/8); every node of a network must use the same',
      })
    }
    const held = (await readView()).subnets.get(me)
    if (held) {
      if (conflictsWith(host, parseCidr(held)).length) throw hostConflictError('this node\'s formnet subnet', parseCidr(held), host)
      return held
    }
    let key: string
    try {
      key = chooseSubnet(me, claimsOf(records), space, config.formnet_subnet_prefix, (c) => conflictsWith(host, c).length === 0)
    } catch (error) {
      throw (error as FormError).code === 'FORMNET_CONFLICT' ? hostConflictError('formnet', space, host) : error
    }
    log.info('claiming a formnet subnet', { subnet: formatCidr(subnetFromKey(key)) })
    await state.put('cidrs', `${key}/${me}`, { node: me, subnet: formatCidr(subnetFromKey(key)) })
  }
}
