import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'
import { checkSetting, settingAt, type Setting } from '../../../core/settings.js'
import { netSettings } from '../../net/index.js'
import { nodeSettings } from '../../node/index.js'
import { kitSettings } from '../lib/settings.js'

// Each flag sets one declared setting: its description, default and check come from that declaration.
const SETTING = {
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
type Flag = keyof typeof SETTING
/** The hypervisor choices the wizard offers: those the setting accepts. */
const HYPERVISORS = nodeSettings.hypervisor.choices
const NET = (flag: Flag) => SETTING[flag].default as string
/** The node's own listen addresses, facing the network: an operator's node is dialled by others. */
const NETWORK_LISTEN = (SETTING['--listen'].default as string[]).map((a) => a.replace(/^\/ip4\/127\.0\.0\.1\//, '/ip4/0.0.0.0/'))

/** A flag's help: the setting's description (its first sentence), and its default when it has a fixed one. */
function about(flag: Flag, suffix = '', showDefault = true): string {
  const setting: Setting<unknown> = SETTING[flag]
  const first = setting.description.split(/(?<=\.) |: (?=loopback)/)[0].replace(/\.$/, '')
  // "vCPUs", "libp2p": a word that is not plain lower case keeps its spelling
  const head = /^[a-z]+\b(?![\d])/.test(first) ? first.charAt(0).toUpperCase() + first.slice(1) : first
  const fixed = showDefault && setting.default !== undefined && setting.example === undefined && !(Array.isArray(setting.default) && !setting.default.length) && setting.default !== ''
  return `${head}${suffix}${fixed ? ` (default ${String(setting.default)})` : ''}`
}

/** Refuses a flag's value as the node would refuse the setting, naming the flag. */
function check<T>(flag: Flag, value: T): T {
  const problem = checkSetting(SETTING[flag], value)
  if (problem) throw new FormError('USAGE', `${flag}: ${problem.replace(/^\.?\[\d+\]: /, '').replace(/^E/, 'e')}`, { hint: `see \`man 5 form-operator\` (${SETTING[flag].type})` })
  return value
}

function whole(flag: Flag, value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isInteger(n)) throw new FormError('USAGE', `${flag} must be a whole number (got "${value}")`)
  return check(flag, n)
}

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
    if (this.set) return this.setKeys(this.set)
    const { join } = await import('node:path')
    const TOML = (await import('@iarna/toml')).default
    const { writeSecretFile } = await import('../lib/keystore.js')
    const { terminalPrompts } = await import('./prompt.js')
    let values = {
      data_dir: this.dataDirPath ?? this.dirs.dataDir,
      // a config being replaced keeps its operator key (a new one needs --new-key)
      operator_keystore: this.operatorKeystore ?? (await this.existingKeystore()) ?? join(this.dirs.configDir, 'operator-key.json'),
      listen: this.listen ?? NETWORK_LISTEN,
      announce: this.announce ?? [],
      bootstrap: this.bootstrap ?? [],
      formnet_cidr: this.formnetCidr ?? NET('--formnet-cidr'),
      bridge_name: this.bridgeName ?? NET('--bridge-name'),
      bridge_subnet: this.bridgeSubnet ?? NET('--bridge-subnet'),
      hypervisor: this.hypervisor ?? NET('--hypervisor'),
      // empty: the node measures its host when it starts
      vcpus: this.vcpus === undefined ? '' : String(whole('--vcpus', this.vcpus)),
      memory_mb: this.memoryMb === undefined ? '' : String(whole('--memory-mb', this.memoryMb)),
      disk_gb: this.diskGb === undefined ? '' : String(whole('--disk-gb', this.diskGb)),
    }
    if (!this.yes) {
      const enquirer = await terminalPrompts(this)
      if (!enquirer) throw new FormError('NO_TERMINAL', 'kit operator asks questions, but stdin is not a terminal', { hint: 'pass --yes with the flags you need' })
      const list = (v: string[]) => v.join(',')
      const a = (await enquirer.prompt([
        { type: 'input', name: 'data_dir', message: 'Data directory', initial: values.data_dir },
        { type: 'input', name: 'listen', message: 'libp2p listen addresses (comma-separated)', initial: list(values.listen) },
        { type: 'input', name: 'bootstrap', message: 'Bootstrap peers (comma-separated; empty for a new network)', initial: list(values.bootstrap) },
        { type: 'input', name: 'formnet_cidr', message: 'formnet CIDR', initial: values.formnet_cidr },
        { type: 'select', name: 'hypervisor', message: 'Hypervisor', choices: [...HYPERVISORS], initial: HYPERVISORS.indexOf(values.hypervisor) },
        { type: 'input', name: 'vcpus', message: 'vCPUs offered (empty: the host\'s minus [node.reserve])', initial: values.vcpus },
        { type: 'input', name: 'memory_mb', message: 'Memory offered, MB (empty: the host\'s minus [node.reserve])', initial: values.memory_mb },
        { type: 'input', name: 'disk_gb', message: 'Disk offered, GB (empty: the free disk minus [node.reserve])', initial: values.disk_gb },
      ])) as Record<string, string>
      const split = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean)
      values = { ...values, ...a, listen: split(a.listen), bootstrap: split(a.bootstrap) }
    }
    for (const [flag, list] of [['--listen', values.listen], ['--announce', values.announce], ['--bootstrap', values.bootstrap]] as const) check(flag, list)
    check('--formnet-cidr', values.formnet_cidr)
    check('--bridge-subnet', values.bridge_subnet)
    check('--bridge-name', values.bridge_name)
    check('--hypervisor', values.hypervisor)
    const doc = {
      node: {
        data_dir: values.data_dir,
        hypervisor: values.hypervisor,
        resources: Object.fromEntries(([['vcpus', '--vcpus'], ['memory_mb', '--memory-mb'], ['disk_gb', '--disk-gb']] as const).filter(([k]) => values[k] !== '').map(([k, flag]) => [k, whole(flag, values[k])])),
      },
      kit: { operator_keystore: values.operator_keystore },
      net: { listen: values.listen, announce: values.announce, bootstrap: values.bootstrap, formnet_cidr: values.formnet_cidr, formnet_port: settingAt(netSettings, 'formnet_port').default as number, bridge_name: values.bridge_name, bridge_subnet: values.bridge_subnet },
    }
    const operatorAddress = await this.ensureOperatorKey(values.operator_keystore)
    const file = this.output ?? this.dirs.operatorConfig
    await writeSecretFile(file, `# Formation operator config, written by \`form kit operator\`. See templates/operator.toml.\n${TOML.stringify(doc as never)}`, this.force)
    this.print({ file, config: doc, operatorAddress }, `wrote ${file}\noperator ${operatorAddress} (keystore ${values.operator_keystore})\nstart the node with: form node start${this.output ? ` --config ${file}` : ''}`)
  }

  /** The operator key uses the same wallet machinery as `kit init`: an existing keystore is kept. */
  private async ensureOperatorKey(keystore: string): Promise<string> {
    const { readFile, access } = await import('node:fs/promises')
    const { createWallet, walletFromMnemonic, walletFromPrivateKey, checksumAddress } = await import('../lib/wallet.js')
    const { encryptKeystore, writeSecretFile } = await import('../lib/keystore.js')
    const importing = this.importMnemonicFile ?? this.importPrivateKeyFile
    const exists = await access(keystore).then(() => true, () => false)
    if (exists && !this.newKey) {
      if (importing) throw new FormError('OPERATOR_KEY_EXISTS', `${keystore} already holds the operator key; the import would replace it`, { hint: 'pass --new-key to replace it (keep a copy of the old keystore: nodes and records know its address), or --operator-keystore with another file' })
      const ks = JSON.parse(await readFile(keystore, 'utf8')) as { address?: string }
      return checksumAddress('0x' + String(ks.address ?? '').replace(/^0x/, ''))
    }
    const read = async (f: string) => {
      try {
        return await readFile(f, 'utf8')
      } catch (error) {
        throw new FormError('IMPORT_UNREADABLE', `cannot read ${f}: ${(error as Error).message}`)
      }
    }
    const wallet = this.importMnemonicFile ? walletFromMnemonic(await read(this.importMnemonicFile)) : this.importPrivateKeyFile ? walletFromPrivateKey(await read(this.importPrivateKeyFile)) : createWallet()
    const { getPassword } = await import('../lib/password.js')
    const { passwordPrompt } = await import('./prompt.js')
    const password = await getPassword({ passwordFile: this.passwordFile, prompt: this.yes ? undefined : await passwordPrompt(this, true) }, 'encrypt the operator keystore')
    await writeSecretFile(keystore, JSON.stringify(await encryptKeystore(wallet, password), null, 2) + '\n', this.newKey)
    return checksumAddress(wallet.address)
  }

  /** The operator keystore the current config file names, if any. */
  private async existingKeystore(): Promise<string | undefined> {
    const { readFile } = await import('node:fs/promises')
    const TOML = (await import('@iarna/toml')).default
    try {
      const doc = TOML.parse(await readFile(this.output ?? this.dirs.operatorConfig, 'utf8')) as { kit?: { operator_keystore?: unknown } }
      return typeof doc.kit?.operator_keystore === 'string' && doc.kit.operator_keystore ? doc.kit.operator_keystore : undefined
    } catch {
      return undefined
    }
  }

  /** --set: one key at a time into the existing file (or a new one), checked like `form node start` checks it. */
  private async setKeys(assignments: string[]) {
    const { readFile } = await import('node:fs/promises')
    const TOML = (await import('@iarna/toml')).default
    const { writeSecretFile } = await import('../lib/keystore.js')
    const { resolveSections } = await import('../../../core/config.js')
    const file = this.output ?? this.dirs.operatorConfig
    let doc: Record<string, unknown> = {}
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch {
      // no file yet: --set starts one
    }
    if (text !== undefined) {
      try {
        doc = TOML.parse(text) as Record<string, unknown>
      } catch (error) {
        throw new FormError('CONFIG_SYNTAX', `${file}: invalid TOML: ${(error as Error).message.split('\n')[0]}`, { hint: 'fix the file by hand first' })
      }
    }
    const changed: Record<string, unknown> = {}
    for (const assignment of assignments) {
      const eq = assignment.indexOf('=')
      const path = eq > 0 ? assignment.slice(0, eq).trim().split('.') : []
      if (!path.length || path.some((k) => !/^[A-Za-z0-9_-]+$/.test(k))) {
        throw new FormError('USAGE', `--set "${assignment}" is not key=value`, { hint: 'e.g. --set node.resources.vcpus=8 (the TOML path of the key, then its value)' })
      }
      if (path.join('.') === 'kit.operator_keystore' && !this.newKey) {
        throw new FormError('OPERATOR_KEY_EXISTS', '--set kit.operator_keystore would change the operator key', { hint: 'pass --new-key with it if that is meant' })
      }
      const raw = assignment.slice(eq + 1).trim()
      let value: unknown
      try {
        value = (TOML.parse(`v = ${raw}`) as { v: unknown }).v
      } catch {
        value = raw // a bare word: a string
      }
      let table = doc
      for (const key of path.slice(0, -1)) {
        const next = table[key]
        if (next === undefined) table[key] = {}
        else if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new FormError('USAGE', `--set ${path.join('.')}: ${key} is not a table in ${file}`)
        table = table[key] as Record<string, unknown>
      }
      table[path[path.length - 1]] = value
      changed[path.join('.')] = value
    }
    // the node refuses what it cannot use; refuse it here, before the file changes. A table left by a
    // removed plugin the node only warns about; one that --set would create is a typo.
    const setTables = new Set(Object.keys(changed).map((k) => k.split('.')[0]))
    resolveSections(file, doc, this.context.plugins.map((p) => p.plugin), (w) => {
      if (setTables.has((w.details as { table: string }).table)) throw w
      this.context.stderr.write(`${this.color('yellow', 'warning')}: ${w.message}: ignored\n`)
    })
    const header = text?.startsWith('#') ? text.split('\n').filter((l, i, all) => l.startsWith('#') && all.slice(0, i).every((x) => x.startsWith('#'))).join('\n') : '# Formation operator config, written by `form kit operator`. See templates/operator.toml.'
    await writeSecretFile(file, `${header}\n${TOML.stringify(doc as never)}`, true)
    this.print({ file, changed }, () => `updated ${file}: ${Object.entries(changed).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ')}`)
  }
}
