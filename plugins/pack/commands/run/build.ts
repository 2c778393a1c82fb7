import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Listr } from 'listr2'
import { FormError } from '../../../../core/errors.js'
import { formatBytes } from '../../../../core/output.js'
import { loadOwnerOps } from '../../../state/index.js'
import { describeBaseProgress } from '../../lib/builder/base-progress.js'
import { requestKey } from '../../lib/builds.js'
import { checkContext, packContext } from '../../lib/context-archive.js'
import type { BuildView } from '../../lib/follow.js'
import { followBuild, buildFailure, describeBuild, fetchFailure, readBuild } from '../../lib/follow.js'
import { printFormfile, buildId as computeBuildId, describeStep } from '../../lib/formfile/index.js'
import type { PackBuildCommand } from '../build.js'
import { loadFormfile, reportDiagnostics } from './shared.js'

export async function packBuild(cmd: PackBuildCommand) {

  const maxMb = Number(cmd.maxContextMb)
  if (!Number.isInteger(maxMb) || maxMb < 1) throw new FormError('USAGE', `--max-context-mb must be a whole number of MiB, not "${cmd.maxContextMb}"`)
  const loaded = await loadFormfile(cmd.file, cmd.profile, true)
  const formfile = reportDiagnostics(cmd, loaded)
  const listing = await checkContext(loaded.contextDir, maxMb * 2 ** 20)
  const config = await cmd.userConfig()
  // unlocked once: it signs the upload, the request and the state record
  const signer = await cmd.signer()
  const client = await cmd.client({ url: cmd.nodeUrl(config), signer })
  const owner = config.address
  const build = computeBuildId(owner, formfile.name)
  const tty = Boolean((cmd.context.stdout as { isTTY?: boolean }).isTTY) && !cmd.json
  let view: BuildView = { owner, build }
  let settle: (() => void) | undefined
  const changed = () => settle?.()
  /** why following the build stopped (the node stopped answering): nothing would settle `until` again */
  let lost: unknown
  /** resolves once `done(view)` holds; rejects when the build failed or was cancelled first */
  const until = async (done: (v: BuildView) => boolean) => {
    for (;;) {
      if (done(view)) return
      if (lost) throw lost
      const s = view.status?.state
      // the output of the failing step is not in state: the builder node (this one) gives it to us
      if (s === 'failed') throw buildFailure(view, (await fetchFailure(client, view)).failure)
      if (s === 'cancelled') throw new FormError('BUILD_CANCELLED', `build ${build} was cancelled`)
      await new Promise<void>((r) => (settle = r))
    }
  }
  const follow = new AbortController()
  let following: Promise<BuildView> | undefined

  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`
  const tasks = new Listr(
    [
      {
        title: `Upload the build context (${listing.files.length} files, ${formatBytes(listing.totalBytes)})`,
        task: async (_ctx: unknown, task: { title: string; output: string }) => {
          const dir = await mkdtemp(join(tmpdir(), 'form-context-'))
          try {
            const file = join(dir, 'context.tar.gz')
            await packContext(loaded.contextDir, listing, file)
            const up = await client.upload<{ context: string; size: number }>('/v1/pack/contexts', file, {
              contentType: 'application/gzip',
              onProgress: (sent, total) => (task.output = `${formatBytes(sent)} of ${formatBytes(total)}`),
            })
            const started = await client.post<{ request: string; name: string; buildId: string; node: string }>('/v1/pack/builds', { context: up.context, formfile: printFormfile(formfile), lines: formfile.steps.map((x) => x.line) })
            const existing = await readBuild(client, owner, build)
            const { submitOwnerRecord } = await loadOwnerOps()
            const request = { name: started.name, node: started.node, request: started.request, context: up.context, requestedAt: Date.now() }
            await submitOwnerRecord(client, signer, 'builds', requestKey(owner, build), request, `build ${build}`, existing.record?.t)
            view = { owner, build, request }
            task.title = `Uploaded the build context (${formatBytes(up.size)} compressed); build ${build} requested on ${started.node}`
          } finally {
            await rm(dir, { recursive: true, force: true })
          }
        },
      },
      {
        title: 'Queued',
        skip: () => cmd.detach,
        task: async (_ctx: unknown, task: { title: string }) => {
          following = followBuild(client, owner, build, (v) => ((view = v), changed()), follow.signal)
          following.catch((error: unknown) => {
            lost = error
            changed()
          })
          await until((v) => Boolean(v.status && v.status.state !== 'queued'))
          task.title = 'Building'
        },
      },
      {
        title: 'Base image',
        skip: () => cmd.detach,
        task: async (_ctx: unknown, task: { title: string; output: string }) => {
          // a cold base takes minutes: its phase and package counts show while it is built
          await until((v) => {
            const p = v.status?.baseProgress
            if (p && !v.status?.base) task.output = describeBaseProgress(p)
            return Boolean(v.status?.base) || v.status?.state === 'built'
          })
          const b = view.status?.base
          task.title = `Base image: ${b?.cached !== false ? 'cached' : 'built'}${b?.ms ? ` (${seconds(b.ms)})` : ''}`
        },
      },
      ...formfile.steps.map((step, index) => ({
        title: `line ${step.line}: ${describeStep(step)}`,
        skip: () => cmd.detach,
        task: async (_ctx: unknown, task: { title: string }) => {
          await until((v) => (v.status?.steps.length ?? 0) > index || v.status?.state === 'built')
          const s = view.status?.steps[index]
          task.title = `line ${step.line}: ${describeStep(step)} (${s?.cached !== false ? 'cached' : `ran ${seconds(s.ms)}`})`
        },
      })),
      {
        title: 'Image',
        skip: () => cmd.detach,
        task: async (_ctx: unknown, task: { title: string }) => {
          await until((v) => v.status?.state === 'built')
          task.title = `Image ${view.status?.image}${view.status?.reused ? ' (identical to the previous build)' : ''}`
        },
      },
    ],
    {
      renderer: 'default',
      fallbackRenderer: 'simple',
      fallbackRendererCondition: !tty,
      silentRendererCondition: cmd.json,
      exitOnError: true,
      registerSignalListeners: false,
      rendererOptions: { outputBar: 1, persistentOutput: false },
    } as never,
  )

  // Ctrl-C leaves the build running on the node.
  const onInterrupt = () => {
    follow.abort()
    cmd.context.stderr.write(`\nStopped following; the build goes on. See it with: form pack status --build-id ${build}\n`)
    process.exit(0)
  }
  process.once('SIGINT', onInterrupt)
  try {
    await tasks.run()
  } catch (error) {
    if (cmd.json && view.status) cmd.context.stdout.write(JSON.stringify({ buildId: build, status: view.status }, null, 2) + '\n')
    throw error
  } finally {
    follow.abort()
    process.off('SIGINT', onInterrupt)
  }
  if (cmd.detach) {
    cmd.print({ buildId: build, node: view.request?.node, request: view.request?.request, state: 'requested' }, () => `build ${build} requested; follow it with: form pack status --build-id ${build}`)
    return
  }
  cmd.print({ buildId: build, node: view.request?.node, status: view.status }, () => `\n${describeBuild(view)}`)
}
