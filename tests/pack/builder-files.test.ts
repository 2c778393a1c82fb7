import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../core/log.js'
import { BuilderFiles } from '../../plugins/pack/service/builder/files.js'

const log: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
const ALICE = '0x' + 'a1'.repeat(20)
const BOB = '0x' + 'b2'.repeat(20)
const CONTEXT = 'c'.repeat(64)
const BUILD = 'b'.repeat(64)

t.test('builder files: opening clears what a killed node left, and drops contexts kept by id alone', async (t) => {
  const root = t.testdir()
  const first = await BuilderFiles.open(join(root, 'builder'), join(root, 'cache'), false, log)
  await writeFile(join(first.dirs.uploads, 'half-sent'), 'x')
  await mkdir(join(first.dirs.contexts, ALICE), { recursive: true })
  await writeFile(first.contextFile(ALICE, CONTEXT), 'kept')
  await mkdir(join(first.dirs.contexts, 'legacy-id'), { recursive: true })
  await mkdir(join(first.dirs.work, 'abc'), { recursive: true })
  const files = await BuilderFiles.open(join(root, 'builder'), join(root, 'cache'), false, log)
  t.notOk(existsSync(join(files.dirs.uploads, 'half-sent')), 'an upload cut off')
  t.notOk(existsSync(join(files.dirs.contexts, 'legacy-id')), 'a context directory that is no owner')
  t.notOk(existsSync(join(files.dirs.work, 'abc')), 'a build\'s work directory')
  t.ok(existsSync(files.contextFile(ALICE, CONTEXT)), 'an owner\'s context stays')
  t.equal(files.dirs.cache, join(root, 'cache'))
})

t.test('builder files: every path is under its owner\'s address; a work directory is per owner and request', async (t) => {
  const files = await BuilderFiles.open(join(t.testdir(), 'builder'), join(t.testdir(), 'cache'), false, log)
  t.equal(files.requestFile(ALICE, '0123456789abcdef'), join(files.dirs.requests, ALICE, '0123456789abcdef.json'))
  t.equal(files.logFile(ALICE, BUILD, 'r'), join(files.dirs.logs, ALICE, BUILD, 'r.log'))
  t.equal(files.failureFile(ALICE, BUILD, 'r'), join(files.dirs.logs, ALICE, BUILD, 'r.failure.json'))
  t.throws(() => files.contextFile('../..', CONTEXT), { code: 'BUILD_BAD_REQUEST' }, 'an owner that is no address names no path')
  t.throws(() => files.logFile('0xnot', BUILD, 'r'), { code: 'BUILD_BAD_REQUEST' })
  t.not(files.workDir(ALICE, 'r1'), files.workDir(BOB, 'r1'), 'another wallet naming my request id never shares my work directory')
  t.equal(files.workDir(ALICE, 'r1'), files.workDir(ALICE, 'r1'))
})

t.test('builder files: a request counts only when its owner made it here, for this build, from a context still here', async (t) => {
  const files = await BuilderFiles.open(join(t.testdir(), 'builder'), join(t.testdir(), 'cache'), false, log)
  const request = '0123456789abcdef'
  await mkdir(join(files.dirs.requests, ALICE), { recursive: true })
  await writeFile(files.requestFile(ALICE, request), JSON.stringify({ build: BUILD, name: 'web', context: CONTEXT, formfile: 'FROM x', createdAt: 1 }))
  const req = { request, context: CONTEXT } as Parameters<typeof files.ownRequest>[2]
  t.match(await files.ownRequest(ALICE, BUILD, req), { code: 'BUILD_NO_CONTEXT' }, 'the context is gone')
  await mkdir(join(files.dirs.contexts, ALICE), { recursive: true })
  await writeFile(files.contextFile(ALICE, CONTEXT), 'ctx')
  t.match(await files.ownRequest(ALICE, BUILD, req), { build: BUILD, context: CONTEXT, name: 'web' })
  t.match(await files.ownRequest(BOB, BUILD, req), { code: 'BUILD_UNKNOWN_REQUEST' }, 'another wallet cannot use my request')
  t.match(await files.ownRequest(ALICE, 'd'.repeat(64), req), { code: 'BUILD_REQUEST_MISMATCH' }, 'made for another build')
  t.match(await files.ownRequest(ALICE, BUILD, { ...req, context: 'e'.repeat(64) }), { code: 'BUILD_REQUEST_MISMATCH' }, 'or another context')
  t.match(await files.ownRequest(ALICE, BUILD, { ...req, request: '../../x' }), { code: 'BUILD_UNKNOWN_REQUEST' }, 'a request id of another shape is not looked up')
})
