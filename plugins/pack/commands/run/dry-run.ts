import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { FormError } from '../../../../core/errors.js'
import { formatBytes } from '../../../../core/output.js'
import { ADDRESS_ANY_CASE } from '../../../../core/patterns.js'
import { buildId, listContextFiles, describeHealth, describeStep, healthChecks } from '../../lib/formfile/index.js'
import type { PackDryRunCommand } from '../dry-run.js'
import { loadFormfile, reportDiagnostics } from './shared.js'

export async function packDryRun(cmd: PackDryRunCommand) {
  const loaded = await loadFormfile(cmd.file, cmd.profile, true)
  const formfile = reportDiagnostics(cmd, loaded)
  const owner = cmd.owner ?? (await configuredAddress(cmd))
  if (!ADDRESS_ANY_CASE.test(owner)) throw new FormError('USAGE', `--owner "${owner}" is not a 20-byte hex address (0x + 40 hex digits)`)
  const context = await listContextFiles(loaded.contextDir)
  const id = buildId(owner, formfile.name)
  const r = formfile.resources
  cmd.print({ buildId: id, owner, name: formfile.name, resources: r, steps: formfile.steps, entrypoint: formfile.entrypoint, expose: formfile.expose, health: healthChecks(formfile), context }, () =>
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

async function configuredAddress(cmd: PackDryRunCommand): Promise<string> {
  const file = join(cmd.dirs.configDir, 'config.json')
  try {
    const address = (JSON.parse(await readFile(file, 'utf8')) as { address?: string }).address
    if (address) return address
  } catch {
    // no config yet: the error below says what to do
  }
  throw new FormError('NO_OWNER', `no owner address: ${file} has none`, { hint: 'create your wallet with `form kit init`, or pass --owner 0x...' })
}
