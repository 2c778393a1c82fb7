import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
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

/**
 * What the test helpers expect of a tap test (`testdir`, `teardown`), for benchmarks that reuse
 * them: `run` runs one round and its teardowns; `close` removes the folders.
 */
export function benchScope(name: string) {
  const cleanups: (() => unknown)[] = []
  const dirs: string[] = []
  const scope = {
    testdir: () => {
      const d = mkdtempSync(join(tmpdir(), `form-bench-${name}-`))
      dirs.push(d)
      return d
    },
    teardown: (fn: () => unknown) => void cleanups.push(fn),
  }
  const teardown = async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  }
  return {
    scope,
    run: async (fn: () => Promise<void>) => {
      try {
        await fn()
      } finally {
        await teardown()
      }
    },
    close: async () => {
      await teardown()
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    },
  }
}
