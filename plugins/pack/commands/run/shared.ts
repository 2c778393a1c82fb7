import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { FormError, errnoCode } from '../../../../core/errors.js'
import type { FormCommand } from '../../../../core/command.js'
import { placeholderKeyDiagnostics } from './validate.js'
import { buildId, formatDiagnostics, parseFormfile, PROFILES, type Formfile, type ParseResult } from '../../lib/formfile/index.js'

export interface LoadedFormfile extends ParseResult {
  path: string
  source: string
  contextDir: string
}

/**
 * Reads and parses the Formfile named by -f (default ./Formfile). `forImage` (validate, dry-run,
 * build) also refuses what would make a useless image: the template's placeholder SSH key.
 */
export async function loadFormfile(file: string | undefined, profile: string | undefined, forImage = false): Promise<LoadedFormfile> {
  const path = resolve(file ?? 'Formfile')
  if (profile !== undefined && !PROFILES[profile]) {
    throw new FormError('USAGE', `unknown profile "${profile}"`, { hint: `profiles: ${Object.keys(PROFILES).join(', ')}` })
  }
  let source: string
  try {
    source = await readFile(path, 'utf8')
  } catch (error) {
    throw new FormError('FORMFILE_NOT_FOUND', `cannot read ${path}: ${errnoCode(error) === 'ENOENT' ? 'no such file' : (error as Error).message}`, {
      hint: errnoCode(error) === 'ENOENT' ? 'run this in the directory of your Formfile, pass -f PATH, or create one with `form pack init`' : undefined,
    })
  }
  const contextDir = dirname(path)
  const parsed = parseFormfile(source, { file: file ?? 'Formfile', contextDir, profile })
  if (forImage) parsed.diagnostics = [...parsed.diagnostics, ...placeholderKeyDiagnostics(source, file ?? 'Formfile')]
  return { path, source, contextDir, ...parsed }
}

/** Prints the diagnostics; throws when there are errors so the command exits 1. */
export function reportDiagnostics(cmd: FormCommand, loaded: LoadedFormfile): Formfile {
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error').length
  if (!cmd.json && loaded.diagnostics.length) cmd.context.stderr.write(formatDiagnostics(loaded.diagnostics, loaded.source, cmd.color) + '\n\n')
  if (errors || !loaded.formfile) {
    throw new FormError('FORMFILE_INVALID', `${loaded.path} has ${errors} error${errors === 1 ? '' : 's'}`, {
      hint: cmd.json ? 'see details.diagnostics' : 'fix the problems shown above',
      details: { diagnostics: loaded.diagnostics },
    })
  }
  return loaded.formfile
}

/** The build id of a Formfile (default ./Formfile) for `owner`: what commands use without --build-id. */
export async function formfileBuildId(cmd: FormCommand, owner: string, file: string | undefined): Promise<string> {
  return buildId(owner, reportDiagnostics(cmd, await loadFormfile(file, undefined)).name)
}
