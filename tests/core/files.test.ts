import t from 'tap'
import { appendFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileGrowth } from '../../core/files.js'

// fileGrowth is what `form node logs -f`, `form pack logs -f` and `form manage logs -f` wait on:
// woken by the write, not by a timer.

const HOUR = 3_600_000

t.test('wakes when the file grows', async (t) => {
  const file = join(t.testdir(), 'log')
  await writeFile(file, 'one\n')
  const waiting = fileGrowth(file, 4, HOUR)
  setTimeout(() => void appendFile(file, 'two\n'), 100)
  // with an hour's bound, only the write can end the wait (tap's own timeout fails a wait that misses it)
  await waiting
  t.equal((await stat(file)).size, 8, 'it returned once the file was longer')
})

t.test('returns at once when the file is already longer', async (t) => {
  const file = join(t.testdir(), 'log')
  await writeFile(file, 'one\ntwo\n')
  await fileGrowth(file, 4, HOUR)
  t.pass('no wait')
})

t.test('returns after its bound when nothing is written, and when aborted', async (t) => {
  const file = join(t.testdir(), 'log')
  await writeFile(file, 'one\n')
  await fileGrowth(file, 4, 50)
  t.equal((await stat(file)).size, 4, 'the bound ended the wait; nothing was written')
  const abort = new AbortController()
  setTimeout(() => abort.abort(), 50)
  await fileGrowth(file, 4, HOUR, abort.signal)
  t.pass('the abort ended the wait')
})

t.test('a file that does not exist yet is waited on for the bound', async (t) => {
  await fileGrowth(join(t.testdir(), 'none'), 0, 50)
  t.pass('no error')
})
