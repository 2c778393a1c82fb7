// Start-up cost of `form --version` and `form --help` against bare Node (`node -e 0`), measured in
// one run with the same Node binary, so the ratio holds across machines. Run: npx tsx bench/startup.ts
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, recordResults } from './results.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const RUNS = Number(process.env.BENCH_RUNS ?? 30)
const home = mkdtempSync(join(tmpdir(), 'form-bench-'))
const env = { ...process.env, FORM_CONFIG_DIR: join(home, 'c'), FORM_DATA_DIR: join(home, 'd'), FORM_RUNTIME_DIR: join(home, 'r'), NO_COLOR: '1' }

function time(args: string[]): number {
  const t0 = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, { env, stdio: 'ignore' })
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`)
  return Number(process.hrtime.bigint() - t0) / 1e6
}

const cases: [string, string[]][] = [
  ['node -e 0 (baseline)', ['-e', '0']],
  ['form --version', [join(ROOT, 'bin/form.js'), '--version']],
  ['form --help', [join(ROOT, 'bin/form.js'), '--help']],
]
// Interleave the cases so that drift in machine load hits all of them alike.
const samples = cases.map(() => [] as number[])
for (const [, args] of cases) time(args) // warm the file cache
for (let i = 0; i < RUNS; i++) cases.forEach(([, args], j) => samples[j].push(time(args)))
rmSync(home, { recursive: true, force: true })

const base = median(samples[0])
const rows = cases.map(([name], j) => {
  const m = median(samples[j])
  return `| ${name} | ${m.toFixed(1)} | ${(m / base).toFixed(2)}x |`
})
const body = [
  `Median wall time of ${RUNS} runs each, interleaved. Target: under 2x bare Node.`,
  '',
  '| command | median ms | ratio to bare Node |',
  '|---|---|---|',
  ...rows,
].join('\n')
console.log(body)
recordResults('Start-up (bench/startup.ts)', body)
