import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { flagHelp, settingAt } from '../../../core/settings.js'
import { netSettings } from '../../net/index.js'
import { nodeSettings } from '../../node/index.js'
import { kitSettings } from '../lib/settings.js'

// Each flag sets one declared setting: its description, default and check come from that declaration.
export const SETTING = {
  '--data-dir-path': settingAt(nodeSettings, 'data_dir'),
  '--operator-keystore': settingAt(kitSettings, 'operator_keystore'),
  '--listen': settingAt(netSettings, 'listen'),
  '--announce': settingAt(netSettings, 'announce'),
  '--bootstrap': settingAt(netSettings, 'bootstrap'),
  '--formnet-cidr': settingAt(netSettings, 'formnet_cidr'),
  '--bridge-name': settingAt(netSettings, 'bridge_name'),
  '--bridge-subnet': settingAt(netSettings, 'bridge_subnet'),
  '--hypervisor': settingAt(nodeSettings, 'hypervisor'),
  '--vcpus': settingAt(nodeSettings, 'resources.vcpus'),
  '--memory-mb': settingAt(nodeSettings, 'resources.memory_mb'),
  '--disk-gb': settingAt(nodeSettings, 'resources.disk_gb'),
} as const
export type Flag = keyof typeof SETTING
/** The hypervisor choices the wizard offers: those the setting accepts. */
export const HYPERVISORS = nodeSettings.hypervisor.choices
/** The node's own listen addresses, facing the network: an operator's node is dialled by others. */
export const NETWORK_LISTEN = (SETTING['--listen'].default as string[]).map((a) => a.replace(/^\/ip4\/127\.0\.0\.1\//, '/ip4/0.0.0.0/'))

const about = (flag: Flag, suffix = '', showDefault = true) => flagHelp(SETTING[flag], suffix, showDefault)

export class KitOperatorCommand extends FormCommand {
  static override paths = [['kit', 'operator']]
  static override usage = Command.Usage({
    category: 'Kit',
    description: 'Write the operator config of a node (TOML)',
    details: `
      Sets the operator key, data directory, libp2p listen/announce/bootstrap addresses, the formnet CIDR, the bridge, the hypervisor backend and the resources the node offers (left out: the node measures its host). Writes --output (default: the operator config path, /etc/form/operator.toml as root). \`form node start\` reads it; without one the node runs on built-in defaults.

      \`--set key=value\` (repeatable) changes one setting of the existing file and keeps the rest (comments are not kept); the key is the TOML path, e.g. \`node.resources.vcpus=8\` or \`net.bootstrap=["/ip4/..."]\`, the value TOML (a bare word is a string). The result is checked as \`form node start\` checks it before it is written.

      An existing operator keystore is never replaced: a new or imported key needs \`--new-key\`.
    `,
    examples: [
      ['Interactive', '$0 kit operator'],
      ['A second node of a network', '$0 kit operator --yes --bootstrap /ip4/192.168.1.10/tcp/3010/p2p/12D3Koo... --vcpus 8 --memory-mb 16384 --disk-gb 200'],
      ['Change one setting, keep the rest', '$0 kit operator --set node.resources.vcpus=8 --set node.hypervisor=qemu'],
    ],
  })
  static valueNames = { '--set': 'key=value', '--hypervisor': HYPERVISORS.join('|') }
  yes = Option.Boolean('--yes,-y', false, { description: 'Do not ask; use the flags and defaults' })
  output = Option.String('--output,-o', { description: 'Where to write the TOML' })
  force = Option.Boolean('--force', false, { description: 'Replace an existing file (the operator key stays; see --new-key)' })
  set = Option.Array('--set', { description: 'Change one setting of the existing file (key=value, TOML path and value), keep the rest; repeatable' })
  newKey = Option.Boolean('--new-key', false, { description: 'Replace an existing operator keystore with a new (or imported) key' })
  dataDirPath = Option.String('--data-dir-path', { description: `${about('--data-dir-path')} (default: this machine's data directory)` })
  operatorKeystore = Option.String('--operator-keystore', { description: about('--operator-keystore') })
  listen = Option.Array('--listen', { description: `${about('--listen', ` (repeatable; default ${NETWORK_LISTEN.join(', ')}: other machines dial an operator's node)`, false)}` })
  announce = Option.Array('--announce', { description: about('--announce', ' (repeatable)') })
  bootstrap = Option.Array('--bootstrap', { description: about('--bootstrap', ' (repeatable)') })
  formnetCidr = Option.String('--formnet-cidr', { description: about('--formnet-cidr') })
  bridgeName = Option.String('--bridge-name', { description: about('--bridge-name') })
  bridgeSubnet = Option.String('--bridge-subnet', { description: about('--bridge-subnet') })
  hypervisor = Option.String('--hypervisor', { description: about('--hypervisor') })
  vcpus = Option.String('--vcpus', { description: about('--vcpus', ' (left out: measured on the host)') })
  memoryMb = Option.String('--memory-mb', { description: about('--memory-mb', ' (left out: measured on the host)') })
  diskGb = Option.String('--disk-gb', { description: about('--disk-gb', ' (left out: measured on the host)') })
  passwordFile = Option.String('--password-file', { description: 'Password of the operator keystore (else FORM_PASSWORD or a prompt)' })
  importMnemonicFile = Option.String('--import-mnemonic-file', { description: 'Import the operator key from a BIP-39 phrase in this file' })
  importPrivateKeyFile = Option.String('--import-private-key-file', { description: 'Import the operator key from a hex private key in this file' })

  async run() {
    return (await import('./run/operator.js')).kitOperator(this)
  }
}
