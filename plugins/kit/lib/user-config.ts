import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as t from 'typanion'
import { FormError, errnoCode } from '../../../core/errors.js'
import { writeSecretFile } from '../../../core/files.js'
import { isCidr, isInterfaceName, isIpv4, isLowerAddress } from '../../../core/validators.js'
import { FAILOVER_S, REPLICAS, wholeWithin } from '../../instances/index.js'

/** ~/.config/form/config.json: what `form kit init` records. Never holds a secret. */
export interface UserConfig {
  version: 1
  address: string
  keystore: string
  /** node API endpoints the CLI talks to; empty means the local node's socket */
  hosts: string[]
  formnet: FormnetMembership
  /** defaults of `form pack ship` (its flags win) */
  ship?: { replicas?: number; failoverAfterS?: number }
}

/** formnet preferences, and after `form manage join` the membership the node granted. */
export interface FormnetMembership {
  join: boolean
  /** this machine's formnet address (a /32 in the admitting node's subnet) */
  address?: string
  /** the whole formnet, routed through the interface */
  cidr?: string
  /** the admitting node's account address, and where its API was reached */
  node?: string
  host?: string
  /** local WireGuard interface name */
  interface?: string
}

const isUserConfig = t.isObject({
  version: t.isLiteral(1),
  address: isLowerAddress,
  keystore: t.isString(),
  hosts: t.isArray(t.cascade(t.isString(), t.matchesRegExp(/^(https?:\/\/|unix:)/))),
  formnet: t.isObject({
    join: t.isBoolean(),
    address: t.isOptional(isIpv4),
    cidr: t.isOptional(isCidr),
    node: t.isOptional(t.isString()),
    host: t.isOptional(t.isString()),
    interface: t.isOptional(isInterfaceName),
  }),
  ship: t.isOptional(
    t.isObject({
      replicas: t.isOptional(wholeWithin(REPLICAS)),
      failoverAfterS: t.isOptional(wholeWithin(FAILOVER_S)),
    }),
  ),
})

export function userConfigPath(configDir: string): string {
  return join(configDir, 'config.json')
}

export async function loadUserConfig(configDir: string): Promise<UserConfig | undefined> {
  const file = userConfigPath(configDir)
  let data: unknown
  try {
    data = JSON.parse(await readFile(file, 'utf8'))
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined
    throw new FormError('CONFIG_INVALID', `${file} is not valid JSON: ${(error as Error).message}`, { hint: 'fix it, or run `form kit init` again to rewrite it' })
  }
  const errors: string[] = []
  if (!isUserConfig(data, { errors })) {
    throw new FormError('CONFIG_INVALID', `${file}: ${errors.map((e) => e.replace(/^\./, '')).join('; ')}`, { hint: 'run `form kit init` again to rewrite it' })
  }
  return data
}

export async function saveUserConfig(configDir: string, config: UserConfig): Promise<string> {
  const file = userConfigPath(configDir)
  await writeSecretFile(file, JSON.stringify(config, null, 2) + '\n', true)
  return file
}
