import { readFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import TOML from '@iarna/toml'
import { resolveSections } from '../../../../core/config.js'
import { FormError } from '../../../../core/errors.js'
import { checkOverride, settingAt } from '../../../../core/settings.js'
import { netSettings } from '../../../net/index.js'
import { writeSecretFile, encryptKeystore } from '../../lib/keystore.js'
import { getPassword } from '../../lib/password.js'
import { createWallet, walletFromMnemonic, walletFromPrivateKey, checksumAddress } from '../../lib/wallet.js'
import type { KitOperatorCommand } from '../operator.js'
import { HYPERVISORS, NETWORK_LISTEN, SETTING, type Flag } from '../operator.js'
import { terminalPrompts, passwordPrompt } from './prompt.js'

const NET = (flag: Flag) => SETTING[flag].default as string

/** Refuses a flag's value as the node would refuse the setting, naming the flag. */
const check = <T>(flag: Flag, value: T): T => checkOverride(flag, SETTING[flag], value) as T

function whole(flag: Flag, value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isInteger(n)) throw new FormError('USAGE', `${flag} must be a whole number (got "${value}")`)
  return check(flag, n)
}

export async function kitOperator(cmd: KitOperatorCommand) {
  if (cmd.set) return setKeys(cmd, cmd.set)
  let values = {
    data_dir: cmd.dataDirPath ?? cmd.dirs.dataDir,
    // a config being replaced keeps its operator key (a new one needs --new-key)
    operator_keystore: cmd.operatorKeystore ?? (await existingKeystore(cmd)) ?? join(cmd.dirs.configDir, 'operator-key.json'),
    listen: cmd.listen ?? NETWORK_LISTEN,
    announce: cmd.announce ?? [],
    bootstrap: cmd.bootstrap ?? [],
    formnet_cidr: cmd.formnetCidr ?? NET('--formnet-cidr'),
    bridge_name: cmd.bridgeName ?? NET('--bridge-name'),
    bridge_subnet: cmd.bridgeSubnet ?? NET('--bridge-subnet'),
    hypervisor: cmd.hypervisor ?? NET('--hypervisor'),
    // empty: the node measures its host when it starts
    vcpus: cmd.vcpus === undefined ? '' : String(whole('--vcpus', cmd.vcpus)),
    memory_mb: cmd.memoryMb === undefined ? '' : String(whole('--memory-mb', cmd.memoryMb)),
    disk_gb: cmd.diskGb === undefined ? '' : String(whole('--disk-gb', cmd.diskGb)),
  }
  if (!cmd.yes) {
    const enquirer = await terminalPrompts(cmd)
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
  const operatorAddress = await ensureOperatorKey(cmd, values.operator_keystore)
  const file = cmd.output ?? cmd.dirs.operatorConfig
  await writeSecretFile(file, `# Formation operator config, written by \`form kit operator\`. See templates/operator.toml.\n${TOML.stringify(doc as never)}`, cmd.force)
  cmd.print({ file, config: doc, operatorAddress }, `wrote ${file}\noperator ${operatorAddress} (keystore ${values.operator_keystore})\nstart the node with: form node start${cmd.output ? ` --config ${file}` : ''}`)
}

/** The operator key uses the same wallet machinery as `kit init`: an existing keystore is kept. */
async function ensureOperatorKey(cmd: KitOperatorCommand, keystore: string): Promise<string> {
  const importing = cmd.importMnemonicFile ?? cmd.importPrivateKeyFile
  const exists = await access(keystore).then(() => true, () => false)
  if (exists && !cmd.newKey) {
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
  const wallet = cmd.importMnemonicFile ? walletFromMnemonic(await read(cmd.importMnemonicFile)) : cmd.importPrivateKeyFile ? walletFromPrivateKey(await read(cmd.importPrivateKeyFile)) : createWallet()
  const password = await getPassword({ passwordFile: cmd.passwordFile, prompt: cmd.yes ? undefined : await passwordPrompt(cmd, true) }, 'encrypt the operator keystore')
  await writeSecretFile(keystore, JSON.stringify(await encryptKeystore(wallet, password), null, 2) + '\n', cmd.newKey)
  return checksumAddress(wallet.address)
}

/** The operator keystore the current config file names, if any. */
async function existingKeystore(cmd: KitOperatorCommand): Promise<string | undefined> {
  try {
    const doc = TOML.parse(await readFile(cmd.output ?? cmd.dirs.operatorConfig, 'utf8')) as { kit?: { operator_keystore?: unknown } }
    return typeof doc.kit?.operator_keystore === 'string' && doc.kit.operator_keystore ? doc.kit.operator_keystore : undefined
  } catch {
    return undefined
  }
}

/** --set: one key at a time into the existing file (or a new one), checked like `form node start` checks it. */
async function setKeys(cmd: KitOperatorCommand, assignments: string[]) {
  const file = cmd.output ?? cmd.dirs.operatorConfig
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
    if (path.join('.') === 'kit.operator_keystore' && !cmd.newKey) {
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
  resolveSections(file, doc, cmd.context.plugins.map((p) => p.plugin), (w) => {
    if (setTables.has((w.details as { table: string }).table)) throw w
    cmd.context.stderr.write(`${cmd.color('yellow', 'warning')}: ${w.message}: ignored\n`)
  })
  const header = text?.startsWith('#') ? text.split('\n').filter((l, i, all) => l.startsWith('#') && all.slice(0, i).every((x) => x.startsWith('#'))).join('\n') : '# Formation operator config, written by `form kit operator`. See templates/operator.toml.'
  await writeSecretFile(file, `${header}\n${TOML.stringify(doc as never)}`, true)
  cmd.print({ file, changed }, () => `updated ${file}: ${Object.entries(changed).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ')}`)
}
