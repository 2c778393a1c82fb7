import { readdir, readFile, writeFile, mkdir, access } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { FormError, errnoCode } from '../../../../core/errors.js'
import { packageRoot } from '../../../../core/package-root.js'
import type { PackInitCommand } from '../init.js'
import { PLACEHOLDER_SSH_KEY } from './validate.js'

const KEY_PLACEHOLDER = '__SSH_PUBLIC_KEY__'

export async function packInit(cmd: PackInitCommand) {
  const root = join(packageRoot(), 'templates', 'formfiles')
  const templates = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()
  if (cmd.list) {
    cmd.print({ templates }, templates.join('\n'))
    return
  }
  if (!templates.includes(cmd.template)) {
    throw new FormError('TEMPLATE_UNKNOWN', `there is no template "${cmd.template}"`, { hint: `templates: ${templates.join(', ')}` })
  }
  const keyFiles = cmd.sshKey ? [resolve(cmd.sshKey)] : ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'].map((f) => join(homedir(), '.ssh', f))
  let key: string | undefined
  for (const f of keyFiles) {
    try {
      key = (await readFile(f, 'utf8')).trim().split('\n')[0]
      break
    } catch (error) {
      if (cmd.sshKey) throw new FormError('SSH_KEY_UNREADABLE', `cannot read the SSH key ${f}: ${errnoCode(error) === 'ENOENT' ? 'no such file' : (error as Error).message}`)
    }
  }
  if (key !== undefined && !/^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+/.test(key)) {
    throw new FormError('SSH_KEY_INVALID', `${cmd.sshKey ?? 'the SSH key'} does not look like an OpenSSH public key`, { hint: 'pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub' })
  }
  const src = join(root, cmd.template)
  const dest = resolve(cmd.dir)
  const files: string[] = []
  const walk = async (d: string, rel = ''): Promise<void> => {
    for (const e of await readdir(join(d, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) await walk(d, r)
      else files.push(r)
    }
  }
  await walk(src)
  if (!cmd.force) {
    const existing: string[] = []
    for (const f of files) {
      try {
        await access(join(dest, f))
        existing.push(f)
      } catch {
        // free
      }
    }
    if (existing.length) {
      throw new FormError('FILES_EXIST', `${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''} in ${dest}`, { hint: 'use --force to overwrite, or --dir to write elsewhere' })
    }
  }
  for (const f of files.sort()) {
    let content = await readFile(join(src, f), 'utf8')
    if (f === 'Formfile') content = content.replace(KEY_PLACEHOLDER, key ?? PLACEHOLDER_SSH_KEY)
    await mkdir(dirname(join(dest, f)), { recursive: true })
    await writeFile(join(dest, f), content)
  }
  cmd.print({ template: cmd.template, dir: dest, files: files.sort(), sshKey: key !== undefined }, () =>
    [`wrote ${files.length} files from template ${cmd.template} to ${dest}:`, ...files.sort().map((f) => `  ${f}`), key ? '' : 'note: no SSH public key found; edit ssh_authorized_keys in the Formfile before building', 'next: form pack validate && form pack build'].filter(Boolean).join('\n'),
  )
}
