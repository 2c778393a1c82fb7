import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError, errnoCode } from '../../../core/errors.js'
import { PLACEHOLDER_SSH_KEY } from './validate.js'

const KEY_PLACEHOLDER = '__SSH_PUBLIC_KEY__'

export class PackInitCommand extends FormCommand {
  static override paths = [['pack', 'init']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Write a Formfile (and sample files) from a template',
    details: 'Templates: static-nginx (a static site served by nginx), python-web (a Python HTTP app), node-web (a Node.js HTTP app), hello-web (a Perl HTTP page that installs nothing), docker-compose (docker and a compose project started at boot; a slow build: docker.io is large). The USER gets your SSH public key (`--ssh-key`, else ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub). Existing files are never overwritten without `--force`.',
    examples: [
      ['A static site in the current directory', '$0 pack init'],
      ['A Python app in ./api with a given key', '$0 pack init --template python-web --dir api --ssh-key ~/.ssh/work.pub'],
      ['List the templates', '$0 pack init --list'],
    ],
  })
  template = Option.String('--template,-t', 'static-nginx', { description: 'Template name' })
  dir = Option.String('--dir', '.', { description: 'Where to write the files' })
  sshKey = Option.String('--ssh-key', { description: 'SSH public key file for the Formfile USER' })
  force = Option.Boolean('--force', false, { description: 'Overwrite existing files' })
  list = Option.Boolean('--list', false, { description: 'List the templates and exit' })

  async run() {
    const { readdir, readFile, writeFile, mkdir, access } = await import('node:fs/promises')
    const { join, resolve, dirname } = await import('node:path')
    const { homedir } = await import('node:os')
    const { packageRoot } = await import('../../../core/package-root.js')
    const root = join(packageRoot(), 'templates', 'formfiles')
    const templates = (await readdir(root, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort()
    if (this.list) {
      this.print({ templates }, templates.join('\n'))
      return
    }
    if (!templates.includes(this.template)) {
      throw new FormError('TEMPLATE_UNKNOWN', `there is no template "${this.template}"`, { hint: `templates: ${templates.join(', ')}` })
    }
    const keyFiles = this.sshKey ? [resolve(this.sshKey)] : ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'].map((f) => join(homedir(), '.ssh', f))
    let key: string | undefined
    for (const f of keyFiles) {
      try {
        key = (await readFile(f, 'utf8')).trim().split('\n')[0]
        break
      } catch (error) {
        if (this.sshKey) throw new FormError('SSH_KEY_UNREADABLE', `cannot read the SSH key ${f}: ${errnoCode(error) === 'ENOENT' ? 'no such file' : (error as Error).message}`)
      }
    }
    if (key !== undefined && !/^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+/.test(key)) {
      throw new FormError('SSH_KEY_INVALID', `${this.sshKey ?? 'the SSH key'} does not look like an OpenSSH public key`, { hint: 'pass the .pub file, e.g. --ssh-key ~/.ssh/id_ed25519.pub' })
    }
    const src = join(root, this.template)
    const dest = resolve(this.dir)
    const files: string[] = []
    const walk = async (d: string, rel = ''): Promise<void> => {
      for (const e of await readdir(join(d, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name
        if (e.isDirectory()) await walk(d, r)
        else files.push(r)
      }
    }
    await walk(src)
    if (!this.force) {
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
    this.print({ template: this.template, dir: dest, files: files.sort(), sshKey: key !== undefined }, () =>
      [`wrote ${files.length} files from template ${this.template} to ${dest}:`, ...files.sort().map((f) => `  ${f}`), key ? '' : 'note: no SSH public key found; edit ssh_authorized_keys in the Formfile before building', 'next: form pack validate && form pack build'].filter(Boolean).join('\n'),
    )
  }
}
