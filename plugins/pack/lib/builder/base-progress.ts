/**
 * What a cold base build (mmdebstrap --verbose, 1.5–3 minutes) is doing, read from its output: its
 * own phase lines (`I: downloading packages with apt...`) and apt's and dpkg's package lines. The
 * owner sees it in `form pack build` and `form pack status`; it goes into replicated state, so it
 * holds only mmdebstrap's phase names and counts, never a line of output.
 */

export interface BaseProgress {
  /** mmdebstrap's phase, e.g. 'downloading packages with apt', 'installing remaining packages inside the chroot' */
  phase: string
  /** packages the current apt run installs, once apt has said so */
  total?: number
  downloaded: number
  unpacked: number
  configured: number
}

/** Longest phase name kept (mmdebstrap's are about 50 characters). */
const MAX_PHASE = 80

// after these the package counts still refer to the set apt announced just before
const SAME_SET = /^(extracting archives|installing essential packages)/

export class BaseProgressReader {
  progress: BaseProgress = { phase: 'starting mmdebstrap', downloaded: 0, unpacked: 0, configured: 0 }
  /** mmdebstrap's and apt's error lines (`E: ...`), the first ones: what a failure says first */
  readonly errors: string[] = []
  private partial = ''

  /** Reads a chunk of output; true when the phase changed (worth telling at once), not only a count. */
  push(chunk: string): { changed: boolean; phaseChanged: boolean } {
    const text = this.partial + chunk
    const lines = text.split(/\r?\n|\r/)
    this.partial = lines.pop()!.slice(-4096)
    let changed = false
    let phaseChanged = false
    for (const line of lines) {
      const r = this.line(line)
      changed ||= r !== 'none'
      phaseChanged ||= r === 'phase'
    }
    return { changed, phaseChanged }
  }

  private line(line: string): 'none' | 'count' | 'phase' {
    const p = this.progress
    const phase = /^I: (.+)\.\.\.\s*$/.exec(line)
    if (phase) {
      const name = phase[1].slice(0, MAX_PHASE)
      this.progress = { phase: name, downloaded: 0, unpacked: 0, configured: 0, ...(SAME_SET.test(name) && p.total !== undefined ? { total: p.total } : {}) }
      return 'phase'
    }
    if (/^E: /.test(line)) {
      if (this.errors.length < 5) this.errors.push(line.slice(0, 300))
      return 'none'
    }
    const planned = /^\d+ upgraded, (\d+) newly installed/.exec(line)
    if (planned) {
      p.total = Number(planned[1])
      p.downloaded = p.unpacked = p.configured = 0
      return 'count'
    }
    // index files are fetched (Get:) too, before apt has planned anything: only packages count
    if (p.total !== undefined && /^Get:\d+ /.test(line)) p.downloaded++
    else if (/^Unpacking \S/.test(line)) p.unpacked++
    else if (/^Setting up \S/.test(line)) p.configured++
    else return 'none'
    return 'count'
  }
}

/** One line for people: the phase and, when apt has planned, how far the packages are. */
export function describeBaseProgress(p: BaseProgress): string {
  if (p.total === undefined) return p.phase
  const counts: string[] = []
  if (p.downloaded) counts.push(`${Math.min(p.downloaded, p.total)}/${p.total} downloaded`)
  if (p.unpacked) counts.push(`${Math.min(p.unpacked, p.total)}/${p.total} unpacked`)
  if (p.configured) counts.push(`${Math.min(p.configured, p.total)}/${p.total} set up`)
  return `${p.phase} (${counts.length ? counts.join(', ') : `${p.total} packages`})`
}
