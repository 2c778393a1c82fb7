import { Option } from 'clipanion'
import type { Signer } from '../../../core/auth/sign.js'
import type { NodeClient } from '../../../core/client.js'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'
import { loadInstanceViews, type InstanceView } from '../../instances/index.js'
import { loadSigner, loadUserConfig, type UserConfig } from '../../kit/index.js'

/**
 * Base of the developer commands: they act for the wallet of `form kit init` and talk to the node
 * given with --node, else the first host of the user config, else the local node.
 */
export abstract class DeveloperCommand extends FormCommand {
  node = Option.String('--node', { description: 'Node API URL, e.g. http://203.0.113.7:3004 (default: the first host of `form kit init`, else the local node)' })
  passwordFile = Option.String('--password-file', { description: 'Read the keystore password from this file (or set FORM_PASSWORD)' })

  async userConfig(): Promise<UserConfig> {
    const config = await loadUserConfig(this.dirs.configDir)
    if (!config) throw new FormError('NO_WALLET', 'there is no wallet yet', { hint: 'create one with `form kit init` (add --yes for scripts)' })
    return config
  }

  /** The node URL to use, or undefined for the local socket. */
  nodeUrl(config: UserConfig, preferred?: string): string | undefined {
    const url = this.node ?? preferred ?? config.hosts.find((h) => /^https?:\/\//.test(h))
    return url?.replace(/\/$/, '')
  }

  /** The user's wallet as a signer: the agent of `form kit unlock` when it runs, else unlocked with the password. */
  async signer(): Promise<Signer> {
    return loadSigner({ configDir: this.dirs.configDir, runtimeDir: this.dirs.runtimeDir, passwordFile: this.passwordFile })
  }

  /** A client whose mutating requests are signed by the user's wallet (unlocked once per command). */
  async signedClient(config: UserConfig, url: string | undefined): Promise<NodeClient> {
    return this.client({ url, signer: await this.signer() })
  }
}

/**
 * Base of the commands about the caller's instances: they read state through the node (no
 * signature needed: state is public) and sign what they change with the wallet.
 */
export abstract class InstanceCommand extends DeveloperCommand {
  async instances(config: UserConfig): Promise<{ client: NodeClient; views: InstanceView[] }> {
    const client = await this.client({ url: this.nodeUrl(config) })
    const { listInstances } = await loadInstanceViews()
    return { client, views: await listInstances(client, config.address) }
  }
}
