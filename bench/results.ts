import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))

/** One line naming the machine and the date, put under every section so results can be compared. */
export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu'
  return `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}.`
}

/**
 * Replaces (or appends) the section `## <title>` of bench/RESULTS.md with `body`, leaving the other
 * benchmarks' sections alone.
 */
export function recordResults(title: string, body: string): void {
  let text = ''
  try {
    text = readFileSync(RESULTS, 'utf8')
  } catch {
    text = '# Benchmark results\n\nEach section is written by its benchmark in `bench/`; ratios are measured in one run.\n'
  }
  const start = `<!-- bench:${title} -->`
  const end = `<!-- /bench:${title} -->`
  const section = `${start}\n## ${title}\n\n${machineLine()}\n\n${body.trim()}\n${end}`
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  text = i !== -1 && j > i ? text.slice(0, i) + section + text.slice(j + end.length) : text.trimEnd() + '\n\n' + section + '\n'
  writeFileSync(RESULTS, text)
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
