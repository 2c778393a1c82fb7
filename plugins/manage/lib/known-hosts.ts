import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../core/errors.js'
import { parseIpv4 } from '../../../core/patterns.js'

/** The CLI's own known_hosts file, beside the user config (never the user's ~/.ssh/known_hosts). */
export const knownHostsFile = (configDir: string) => join(configDir, 'known_hosts')

/**
 * Makes `host` known by exactly `keys` (`<type> <base64>`): lines of that host are replaced, others
 * kept. Returns the file. Host keys come from state, checked by the node; a line is written only
 * from a key that is two words of the expected shape.
 */
export async function trustHostKeys(configDir: string, host: string, keys: string[]): Promise<string> {
  const file = knownHostsFile(configDir)
  // the address comes from state too: a pattern (`*`) or a second line must never get in
  if (!parseIpv4(host)) throw new FormError('BAD_INSTANCE_ADDRESS', `the instance's address "${host.slice(0, 60)}" is not an IPv4 address`, { hint: 'the hosting node reported something else; see `form manage list`' })
  const valid = keys.filter((k) => /^[a-z0-9-]{3,40} [A-Za-z0-9+/]+={0,2}$/.test(k))
  const before = await readFile(file, 'utf8').catch(() => '')
  const kept = before.split('\n').filter((l) => l && l.split(' ')[0] !== host)
  const after = [...kept, ...valid.map((k) => `${host} ${k}`)].join('\n') + '\n'
  if (after !== before) {
    await mkdir(configDir, { recursive: true })
    await writeFile(`${file}.tmp`, after, { mode: 0o600 })
    await rename(`${file}.tmp`, file)
  }
  return file
}
