import { Command, Option } from 'clipanion'
import { FormCommand } from '../../../core/command.js'
import { FormError } from '../../../core/errors.js'
import { formatBytes } from '../../../core/output.js'
import { describeHealth, describeStep, healthChecks } from '../lib/formfile/index.js'
import { ADDRESS_ANY_CASE } from '../../../core/patterns.js'

export class PackDryRunCommand extends FormCommand {
  static override paths = [['pack', 'dry-run']]
  static override usage = Command.Usage({
    category: 'Pack',
    description: 'Show what `form pack build` would do, without building',
    details: 'Prints the resolved resources, the ordered build steps, the files of the build context that would be sent (honouring .formignore, gitignore syntax) with their total size, and the build id: hex(SHA3-256(owner address bytes ‖ NAME)).',
    examples: [
      ['For ./Formfile, owner from `form kit init`', '$0 pack dry-run'],
      ['For another owner, as JSON', '$0 pack dry-run --owner 0x1234567890abcdef1234567890abcdef12345678 --json'],
    ],
  })
  file = Option.String('-f,--file', { description: 'The Formfile (default ./Formfile)' })
  owner = Option.String('--owner', { description: 'Owner address for the build id (default: the address in your config)' })
  profile = Option.String('--profile', { description: 'Resource limit profile: default or devnet' })

  async run() {
    const { loadFormfile, reportDiagnostics } = await import('./shared.js')
    const { buildId, listContextFiles } = await import('../lib/formfile/index.js')
    const loaded = await loadFormfile(this.file, this.profile, true)
    const formfile = reportDiagnostics(this, loaded)
    const owner = this.owner ?? (await this.configuredAddress())
    if (!ADDRESS_ANY_CASE.test(owner)) throw new FormError('USAGE', `--owner "${owner}" is not a 20-byte hex address (0x + 40 hex digits)`)
    const context = await listContextFiles(loaded.contextDir)
    const id = buildId(owner, formfile.name)
    const r = formfile.resources
    this.print({ buildId: id, owner, name: formfile.name, resources: r, steps: formfile.steps, entrypoint: formfile.entrypoint, expose: formfile.expose, health: healthChecks(formfile), context }, () =>
      [
        `build id  ${id}`,
        `name      ${formfile.name}${formfile.nameGenerated ? ' (from the directory name)' : ''}`,
        `owner     ${owner}`,
        `resources ${r.vcpus} vCPU, ${r.memoryMb} MB memory, ${r.diskGb} GB disk${r.gpu ? `, ${r.gpu.count} x ${r.gpu.model} GPU` : ''}`,
        '',
        'steps:',
        ...formfile.steps.map((s, i) => `  ${String(i + 1).padStart(2)}. ${describeStep(s)}`),
        `entrypoint: ${formfile.entrypoint ? formfile.entrypoint.argv.join(' ') : '(none)'}`,
        `exposes: ${formfile.expose.length ? formfile.expose.map((p) => `${p.port}${p.endPort ? `-${p.endPort}` : ''}/${p.protocol}`).join(' ') : '(nothing)'}`,
        'health checks:',
        ...describeHealth(formfile).map((l) => `  ${l}`),
        '',
        `context: ${context.files.length} files, ${formatBytes(context.totalBytes)}${context.ignored ? ` (${context.ignored} ignored by .formignore)` : ''}`,
        ...context.files.map((f) => `  ${f.path}  ${formatBytes(f.size)}`),
        ...context.symlinks.map((s) => `  ${s}  (symlink: not sent)`),
      ].join('\n'),
    )
  }

  private async configuredAddress(): Promise<string> {
    const { readFile } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const file = join(this.dirs.configDir, 'config.json')
    try {
      const address = (JSON.parse(await readFile(file, 'utf8')) as { address?: string }).address
      if (address) return address
    } catch {
      // no config yet: the error below says what to do
    }
    throw new FormError('NO_OWNER', `no owner address: ${file} has none`, { hint: 'create your wallet with `form kit init`, or pass --owner 0x...' })
  }
}
