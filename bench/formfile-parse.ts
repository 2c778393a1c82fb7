// Parsing a 10,000-line Formfile, against a baseline measured in the same run: splitting the same
// text into lines and matching each against one regular expression (the least any parser must do).
// Run: npx tsx bench/formfile-parse.ts
import { parseFormfile } from '../plugins/pack/lib/formfile/index.js'
import { median, recordResults } from './results.js'

const lines: string[] = ['NAME big', 'USER username:ada lock_passwd:true ssh_authorized_keys:"ssh-ed25519 AAAA ada@x" sudo:true', 'WORKDIR /srv']
const kinds = [
  (i: number) => `RUN echo step ${i} && test -d /srv`,
  (i: number) => `COPY ./src/file${i}.txt /srv/data/`,
  (i: number) => `ENV --scope=service:app KEY_${i}="value number ${i}"`,
  (i: number) => `INSTALL pkg${i % 50} lib${i % 30}-dev`,
  (i: number) => `# comment ${i}`,
  (i: number) => `RUN apt-get install -y \\\n    thing${i}`,
]
for (let i = 0; lines.join('\n').split('\n').length < 10_000; i++) lines.push(kinds[i % kinds.length](i))
const text = lines.join('\n') + '\n'
const lineCount = text.split('\n').length - 1

const RUNS = 15
const time = (fn: () => unknown) => {
  const samples: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    fn()
    samples.push(performance.now() - t0)
  }
  return median(samples)
}
const baselineRe = /^\s*(\S+)\s+(.*)$/
const baseline = time(() => text.split('\n').map((l) => baselineRe.exec(l)))
const parse = time(() => {
  const r = parseFormfile(text)
  if (!r.formfile) throw new Error(JSON.stringify(r.diagnostics.slice(0, 3)))
})
const body = [
  `A generated Formfile of ${lineCount} lines (RUN, COPY, ENV, INSTALL, comments, continuations), median of ${RUNS} runs.`,
  '',
  '| measure | median ms | lines/s | ratio to baseline |',
  '|---|---|---|---|',
  `| baseline: split lines + one regex per line | ${baseline.toFixed(2)} | ${Math.round(lineCount / (baseline / 1000))} | 1.0 |`,
  `| parseFormfile (lex, validate, typed result) | ${parse.toFixed(2)} | ${Math.round(lineCount / (parse / 1000))} | ${(parse / baseline).toFixed(1)} |`,
].join('\n')
console.log(body)
recordResults('Formfile parsing (bench/formfile-parse.ts)', body)
