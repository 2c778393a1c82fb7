import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { BaseProgressReader, describeBaseProgress, type BaseProgress } from '../../plugins/pack/lib/builder/base-progress.js'
import { prepareBase } from '../../plugins/pack/lib/builder/base.js'
import { FormError } from '../../core/errors.js'
import { builderSkip } from '../helpers/builder.js'
import { ROOT } from '../helpers/form.js'

/** What `mmdebstrap --variant=minbase --verbose bookworm` printed on this kind of machine (92 s, 2026-12-01). */
const sample = async () => gunzipSync(await readFile(join(ROOT, 'tests', 'fixtures', 'mmdebstrap', 'minbase-verbose.log.gz'))).toString('utf8')

/** Every progress the reader reports, fed in chunks of `size` characters (output arrives cut anywhere). */
function replay(text: string, size: number): { seen: BaseProgress[]; reader: BaseProgressReader } {
  const reader = new BaseProgressReader()
  const seen: BaseProgress[] = []
  for (let i = 0; i < text.length; i += size) if (reader.push(text.slice(i, i + size)).changed) seen.push({ ...reader.progress })
  return { seen, reader }
}

const last = (seen: BaseProgress[], phase: string) => seen.filter((p) => p.phase === phase).at(-1)

t.test("a base build's progress is read from mmdebstrap's output: its phases and the package counts", async (t) => {
  const text = await sample()
  // one character at a time: every change is seen (bigger chunks report only where each chunk ends)
  const { seen, reader } = replay(text, 1)
  t.same(
    [...new Set(seen.map((p) => p.phase))],
    [
      'finding correct signed-by value',
      'running apt-get update',
      'downloading packages with apt',
      'extracting archives',
      'installing essential packages',
      'installing remaining packages inside the chroot',
      'cleaning package lists and apt cache',
      'creating tarball',
      'removing tempdir /tmp/mmdebstrap.XXXXXXXXXX',
    ],
    "mmdebstrap's phases, in order",
  )
  t.notOk(seen.some((p) => p.phase === 'running apt-get update' && p.downloaded), 'index files fetched by apt-get update are not packages')
  t.match(last(seen, 'downloading packages with apt'), { total: 69, downloaded: 69 }, 'the essential set: 69 packages downloaded')
  t.match(last(seen, 'installing essential packages'), { total: 69, unpacked: 69 }, 'and unpacked, counted against the same total')
  t.ok(last(seen, 'installing essential packages')!.configured > 0, 'and set up')
  t.match(last(seen, 'installing remaining packages inside the chroot'), { total: 27, downloaded: 27, unpacked: 27, configured: 27 }, 'the rest: 27 packages')
  const during = seen.find((p) => p.phase === 'installing remaining packages inside the chroot' && p.unpacked === 12)!
  t.equal(describeBaseProgress(during), 'installing remaining packages inside the chroot (27/27 downloaded, 12/27 unpacked, 3/27 set up)')
  t.equal(describeBaseProgress({ phase: 'running apt-get update', downloaded: 0, unpacked: 0, configured: 0 }), 'running apt-get update')

  // the same answer however the output is cut
  for (const size of [7, 333, 4096]) t.same(replay(text, size).reader.progress, reader.progress, `chunks of ${size}`)
})

t.test("mmdebstrap's error lines are kept for the failure", async (t) => {
  const r = new BaseProgressReader()
  r.push('I: running apt-get update...\nErr:1 http://127.0.0.1:9/debian bookworm InRelease\n  Could not connect\nE: apt-get update -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed\nE: mmdebstrap failed to run\n')
  t.same(r.errors, ['E: apt-get update -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed', 'E: mmdebstrap failed to run'])
  t.equal(r.progress.phase, 'running apt-get update')
})

t.test('a failing base build names the failing command, streams its whole output and tells its phase', { skip: builderSkip() }, async (t) => {
  const dir = t.testdir()
  const output: string[] = []
  const phases: string[] = []
  // nothing listens on port 9: apt-get update fails at once, without a network
  const mirror = 'http://form-user:s3cret-mirror-pw@127.0.0.1:9/debian'
  const error = await prepareBase({ suite: 'bookworm', cacheDir: join(dir, 'cache'), mirrors: [mirror] }, join(dir, 'root'), {
    onOutput: (chunk) => output.push(chunk),
    onProgress: (p, changed) => changed && phases.push(p.phase),
  }).catch((e: unknown) => e)
  t.ok(error instanceof FormError, String(error))
  const e = error as FormError & { output: string; details: { instruction: string } }
  t.equal(e.code, 'BUILD_BASE_FAILED')
  t.match(e.details.instruction, /^mmdebstrap --variant=minbase --include=\S+ --verbose bookworm \S+ http:\/\/\*\*\*@127\.0\.0\.1:9\/debian$/, 'the record names the command (without the mirror password)')
  t.match(e.message.split('\n')[0], /^mmdebstrap bookworm failed \(exit code \d+\): E: .*apt-get update/, "the first line (what state keeps) says apt's error")
  const all = output.join('')
  t.match(all, /^--> base: mmdebstrap /, 'the build log says what runs')
  t.match(all, /I: running apt-get update\.\.\./, "and gets mmdebstrap's output as it comes")
  t.match(all, /E: mmdebstrap failed to run/, 'all of it, to the end')
  t.match(e.output, /E: mmdebstrap failed to run/, "the failure's output keeps it for the owner")
  t.notMatch(all + e.message + e.details.instruction, /s3cret-mirror-pw/, 'the mirror password is nowhere')
  t.ok(phases.includes('running apt-get update'), `the phase was told (${phases.join(', ')})`)
})

t.test('pack status shows the phase, the base progress, and the command a base build failed on', async (t) => {
  const { describeBuild } = await import('../../plugins/pack/lib/follow.js')
  const request = { name: 'hello-web', node: '0x' + '1'.repeat(40), request: 'r1', context: 'c'.repeat(64), requestedAt: 1 }
  const status = { request: 'r1', name: 'hello-web', steps: [], queuedAt: 1, updatedAt: 2, startedAt: 1 }
  const progress = { phase: 'installing remaining packages inside the chroot', total: 27, downloaded: 27, unpacked: 12, configured: 3 }
  const building = describeBuild({ owner: '0x' + '2'.repeat(40), build: 'b'.repeat(64), request, status: { ...status, state: 'building', phase: 'base', baseProgress: progress } })
  t.match(building, /^phase {3}base$/m)
  t.match(building, /^base {4}building: installing remaining packages inside the chroot \(27\/27 downloaded, 12\/27 unpacked, 3\/27 set up\)$/m)
  const failed = describeBuild({
    owner: '0x' + '2'.repeat(40),
    build: 'b'.repeat(64),
    request,
    status: { ...status, state: 'failed', phase: 'base', baseProgress: { phase: 'running apt-get update', downloaded: 0, unpacked: 0, configured: 0 }, error: { code: 'BUILD_BASE_FAILED', message: 'mmdebstrap bookworm failed (exit code 1): E: apt-get update failed', instruction: 'mmdebstrap --variant=minbase bookworm /x.tar' }, finishedAt: 9 },
  })
  t.match(failed, /^base {4}stopped while: running apt-get update$/m, 'a failed build says where the base build was')
  t.match(failed, /^error {3}BUILD_BASE_FAILED: mmdebstrap bookworm failed \(exit code 1\): E: apt-get update failed$/m)
  t.match(failed, /^command mmdebstrap --variant=minbase bookworm \/x\.tar$/m, 'and the command that failed')
  t.notMatch(failed, /^phase/m, 'the phase line is for running builds')
})
