import { Option } from 'clipanion'
import { dirname, join } from 'node:path'
import { FormCommand } from '../../../core/command.js'
import type { Signer } from '../../../core/auth/sign.js'
import type { NodeClient } from '../../../core/client.js'
import { FormError } from '../../../core/errors.js'
import type { UserConfig } from '../../kit/index.js'

/**
 * Base of the developer commands: they act for the wallet of `form kit init` and talk to the node
 * given with --node, else the first host of the user config, else the local node.
 */
export abstract class DeveloperCommand extends FormCommand {
  node = Option.String('--node', { description: 'Node API URL, e.g. http://203.0.113.7:3004 (default: the first host of `form kit init`, else the local node)' })
  passwordFile = Option.String('--password-file', { description: 'Read the keystore password from this file (or set FORM_PASSWORD)' })

  async userConfig(): Promise<UserConfig> {
    const { loadUserConfig } = await import('../../kit/index.js')
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
    const { loadSigner } = await import('../../kit/index.js')
    return loadSigner({ configDir: this.dirs.configDir, runtimeDir: this.dirs.runtimeDir, passwordFile: this.passwordFile })
  }

  /** A client whose mutating requests are signed by the user's wallet (unlocked once per command). */
  async signedClient(config: UserConfig, url: string | undefined): Promise<NodeClient> {
    return this.client({ url, signer: await this.signer() })
  }

  /** Where this developer's formnet files live: the key beside the keystore, process files in the runtime dir. */
  formnetFiles(config: UserConfig) {
    return {
      keyFile: join(dirname(config.keystore), 'formnet-wireguard.json'),
      pidFile: join(this.dirs.runtimeDir, 'formnet-up.pid'),
      wireguardPidFile: join(this.dirs.runtimeDir, 'formnet-up-wireguard.pid'),
      statusFile: join(this.dirs.runtimeDir, 'formnet-up.json'),
      logFile: join(this.dirs.dataDir, 'logs', 'formnet-up.log'),
    }
  }
}

/**
 * Base of the commands about the caller's instances: they read state through the node (no
 * signature needed: state is public) and sign what they change with the wallet.
 */
export abstract class InstanceCommand extends DeveloperCommand {
  async instances(config: UserConfig): Promise<{ client: NodeClient; views: import('../../instances/index.js').InstanceView[] }> {
    const client = await this.client({ url: this.nodeUrl(config) })
    const { listInstances } = await (await import('../../instances/index.js')).loadInstanceViews()
    return { client, views: await listInstances(client, config.address) }
  }
}
