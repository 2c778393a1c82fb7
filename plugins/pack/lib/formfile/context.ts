import { lstat, readdir, readFile } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import ignore from 'ignore'

export interface ContextFile {
  /** path relative to the context, with / separators */
  path: string
  size: number
  mode: number
}

export interface ContextListing {
  files: ContextFile[]
  totalBytes: number
  /** symbolic links, which are never sent (they could point outside the context) */
  symlinks: string[]
  /** how many paths .formignore excluded */
  ignored: number
}

/** The files of the build context that a build would send, honouring .formignore (gitignore syntax). */
export async function listContextFiles(dir: string): Promise<ContextListing> {
  const ig = ignore()
  try {
    ig.add(await readFile(join(dir, '.formignore'), 'utf8'))
  } catch {
    // no .formignore: everything is sent
  }
  const out: ContextListing = { files: [], totalBytes: 0, symlinks: [], ignored: 0 }
  const walk = async (current: string) => {
    const entries = await readdir(current, { withFileTypes: true })
    entries.sort((a, b) => (a.name < b.name ? -1 : 1))
    for (const e of entries) {
      const full = join(current, e.name)
      const rel = relative(dir, full).split(sep).join('/')
      if (ig.ignores(e.isDirectory() ? `${rel}/` : rel)) {
        out.ignored++
        continue
      }
      if (e.isSymbolicLink()) out.symlinks.push(rel)
      else if (e.isDirectory()) await walk(full)
      else if (e.isFile()) {
        const st = await lstat(full)
        out.files.push({ path: rel, size: st.size, mode: st.mode & 0o777 })
        out.totalBytes += st.size
      }
    }
  }
  await walk(dir)
  return out
}
