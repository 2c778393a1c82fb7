import t from 'tap'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient, type NodeClient } from '../../core/client.js'
import { signRequest, type Signer } from '../../core/auth/sign.js'
import { loadSigner } from '../../plugins/kit/index.js'
import { buildId } from '../../plugins/pack/lib/formfile/index.js'
import { requestKey, statusKey, type BuildStatus } from '../../plugins/pack/lib/builds.js'
import { submitOwnerRecord } from '../../plugins/state/lib/owner-ops.js'
import { builderSkip, shareCachedBase } from '../helpers/builder.js'
import { form, makeEnv, startNode, until, type FormEnv, type Result } from '../helpers/form.js'

/**
 * Two wallets on one builder node. Context hashes and request ids are public in state; before,
 * wallet B could name A's context and request id in its own build record, build A's context (its
 * source, its ENV values) as its own, and read the output. Now contexts and requests belong to the
 * wallet that uploaded and asked for them, the output of a failed step never enters state, and logs
 * and output are served to the owner alone (BUILD_NOT_OWNER, HTTP 403: the client surfaces the code, not the status).
 */

const skip = builderSkip()
const PASSWORD = 'correct horse battery staple'
const nonce = `${process.pid}-${Date.now()}`
const SECRETS = [`A-SOURCE-${nonce}`, `private-output-${nonce}`, `tok-${nonce}`]

const FORMFILE = `NAME owned-app
USER username:ada lock_passwd:true
ENV --scope=system API_TOKEN=tok-${nonce}
COPY secret.txt /srv/secret.txt
RUN printf 'private-%s-%s\\n' output ${nonce} && cat /srv/secret.txt && echo "token $API_TOKEN" && exit 3
`

async function wallet(t: Parameters<typeof makeEnv>[0]): Promise<{ env: FormEnv; signer: Signer }> {
  const env = await makeEnv(t, { FORM_PASSWORD: PASSWORD })
  const r = await form(env, ['kit', 'init', '--yes', '--no-join-formnet'])
  if (r.code !== 0) throw new Error(`kit init failed: ${r.stderr}`)
  await writeFile(join(env.dir, 'password'), PASSWORD)
  return { env, signer: await loadSigner({ configDir: env.configDir, passwordFile: join(env.dir, 'password') }) }
}

const signed = (socket: string, signer: Signer): NodeClient => createClient({ socket, signer: (req) => signRequest({ ...req, signer }) })

t.test('a second wallet cannot build, read or steer the first wallet\'s build; the first can', { skip }, async (t) => {
  const a = await wallet(t)
  const b = await wallet(t)
  await shareCachedBase(a.env)
  const node = await startNode(a.env)
  t.teardown(() => node.stop('SIGKILL'))
  // B's commands talk to the same node
  b.env.env.FORM_RUNTIME_DIR = a.env.runtimeDir
  const clientA = signed(a.env.socket, a.signer)
  const clientB = signed(a.env.socket, b.signer)
  const me = (await clientA.get<{ address: string }>('/v1/state/info')).address
  const A = a.signer.address
  const B = b.signer.address

  // A uploads a context holding its source
  const tar = await import('tar')
  const src = join(a.env.dir, 'app')
  await mkdir(src, { recursive: true })
  await writeFile(join(src, 'secret.txt'), `${SECRETS[0]}\n`)
  await writeFile(join(src, 'Formfile'), FORMFILE)
  await tar.c({ gzip: true, cwd: src, file: join(a.env.dir, 'ctx.tar.gz'), portable: true }, ['secret.txt'])
  const ctxA = (await clientA.upload<{ context: string }>('/v1/pack/contexts', join(a.env.dir, 'ctx.tar.gz'))).context

  // 1. B names A's context in a build request: refused, clearly
  await t.rejects(clientB.post('/v1/pack/builds', { context: ctxA, formfile: FORMFILE }), { code: 'BUILD_CONTEXT_NOT_YOURS', message: /uploaded by another wallet/ }, "B cannot build with A's context")

  // 2. A asks for a build: the node gives A a request id
  const started = await clientA.post<{ request: string; buildId: string; node: string; name: string }>('/v1/pack/builds', { context: ctxA, formfile: FORMFILE })
  t.equal(started.buildId, buildId(A, 'owned-app'))
  const buildA = started.buildId

  // 3. B copies A's request id and context hash (both public once A's record is in state) into its own record
  const buildB = buildId(B, 'owned-app')
  const hijack = { name: 'owned-app', node: me, request: started.request, context: ctxA, requestedAt: Date.now() }
  await submitOwnerRecord(clientB, b.signer, 'builds', requestKey(B, buildB), hijack, 'hijack')
  const refused = await until('the builder to answer B', async () => {
    const r = await clientB.get<{ value: BuildStatus }>(`/v1/state/records/builds/${statusKey(B, buildB, me)}`).catch(() => undefined)
    return r?.value.state === 'failed' ? r.value : undefined
  })
  t.match(refused.error, { code: 'BUILD_UNKNOWN_REQUEST', message: new RegExp(`no build request ${started.request} made by ${B}`) }, "B's record naming A's request id builds nothing")
  t.same(refused.steps, [], 'not one step ran for B')
  // nor can B write A's record
  await t.rejects(submitOwnerRecord(clientB, b.signer, 'builds', requestKey(A, buildA), { ...hijack, cancel: true }, 'cancel A'), { code: 'STATE_WRITE_REJECTED' }, "B cannot write (or cancel) A's request")

  // 4. A's own record starts A's build, which fails at its RUN (exit 3)
  await submitOwnerRecord(clientA, a.signer, 'builds', requestKey(A, buildA), { name: 'owned-app', node: me, request: started.request, context: ctxA, requestedAt: Date.now() }, 'build')
  const failed = await until(
    "A's build to fail",
    async () => {
      const r = await clientA.get<{ value: BuildStatus }>(`/v1/state/records/builds/${statusKey(A, buildA, me)}`).catch(() => undefined)
      return r && ['failed', 'built', 'cancelled'].includes(r.value.state) ? r.value : undefined
    },
    600_000,
  )
  t.match(failed, { state: 'failed', request: started.request, error: { code: 'BUILD_STEP_FAILED', line: 5, exitCode: 3 } }, 'state keeps the state, the failing line and a short code')
  t.notOk('output' in (failed.error ?? {}), 'but no output')
  const everything = JSON.stringify(await clientA.get<{ records: unknown[] }>('/v1/state/records/builds?prefix=&limit=10000'))
  for (const secret of SECRETS) t.notOk(everything.includes(secret), `no build record in state holds ${secret.split('-')[0]}…`)

  // 5. the owner reads the output and the log from the builder node
  const inApp = (env: FormEnv, args: string[]): Promise<Result> => form(env, args, { cwd: src, timeoutMs: 60_000 })
  const status = await inApp(a.env, ['pack', 'status', '--json'])
  t.equal(status.code, 1, 'pack status exits 1 for a failed build')
  const shown = JSON.parse(status.stdout)
  t.match(shown, { buildId: buildA, status: { state: 'failed', error: { code: 'BUILD_STEP_FAILED' } }, failure: { code: 'BUILD_STEP_FAILED', output: new RegExp(`private-output-${nonce}\\s+A-SOURCE-${nonce}`) } }, "pack status fetches the failed step's output from the builder node")
  const human = await inApp(a.env, ['pack', 'status'])
  t.match(human.stdout, /error\s+BUILD_STEP_FAILED: line 5: RUN/, 'and shows the failure')
  t.match(human.stdout, new RegExp(`output \\(last lines, from the builder node\\):\\n\\s+private-output-${nonce}`), 'with the end of the output')
  const logsA = await inApp(a.env, ['pack', 'logs', '--build-id', buildA])
  t.equal(logsA.code, 0, logsA.stderr)
  t.match(logsA.stdout, `private-output-${nonce}`, 'the owner reads the log')

  // 6. B cannot read A's log or failed output, however it asks
  const logsB = await inApp(b.env, ['pack', 'logs', '--build-id', buildA, '--json'])
  t.equal(logsB.code, 1)
  t.match(JSON.parse(logsB.stdout), { error: { code: 'BUILD_NOT_OWNER', message: /belongs to another wallet/ } }, 'form pack logs refuses B with a clear error')
  t.notMatch(logsB.stdout + logsB.stderr, nonce, 'and shows nothing of it')
  for (const body of [{ build: buildA }, { build: buildA, owner: A }, { build: buildA, request: started.request }]) {
    await t.rejects(clientB.post('/v1/pack/builds/failure', body), { code: 'BUILD_NOT_OWNER', message: /belongs to another wallet/ }, `B asking for the output with ${Object.keys(body).join('+')} is refused`)
    await t.rejects(clientB.post('/v1/pack/logs', body), { code: 'BUILD_NOT_OWNER', message: /belongs to another wallet/ }, `B asking for the log with ${Object.keys(body).join('+')} is refused`)
  }
  // B's own build of the same name holds nothing of A's either
  const own = await clientB.post<{ failure: unknown }>('/v1/pack/builds/failure', { build: buildB })
  t.equal(own.failure, null, "B's refused request has no output at all")

  // 7. the node keeps working for both: B's own context and request are taken
  await writeFile(join(b.env.dir, 'b.txt'), 'B\n')
  await tar.c({ gzip: true, cwd: b.env.dir, file: join(b.env.dir, 'ctx.tar.gz'), portable: true }, ['b.txt'])
  const ctxB = (await clientB.upload<{ context: string }>('/v1/pack/contexts', join(b.env.dir, 'ctx.tar.gz'))).context
  const startedB = await clientB.post<{ request: string }>('/v1/pack/builds', { context: ctxB, formfile: 'NAME b-app\nUSER username:bob lock_passwd:true\n' })
  t.match(startedB.request, /^[0-9a-f]{16}$/, "B's own build request is taken")
  const root = join(String(a.env.env.FORM_DATA_DIR), 'builder')
  t.same(await readdir(join(root, 'contexts')).then((d) => d.sort()), [A, B].sort(), 'contexts are kept per owner')
  t.same(await readdir(join(root, 'requests', A)), [], "A's finished request is gone from the node")
})
